pub mod cms;
mod common_b;
pub mod serenities;
