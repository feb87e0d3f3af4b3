//! The signed-URL parser's fuzz properties (`fuzz/src/lib.rs`), on every test run and on stable:
//! the committed seed corpus, then inputs derived from it by a fixed sequence of byte mutations of
//! the kinds libFuzzer makes. `dev/fuzz-signed-urls` explores further with coverage guidance.

// `encode` serves only the seed-corpus generator.
#[allow(dead_code)]
#[path = "../../../fuzz/src/lib.rs"]
mod fuzz_input;

use std::path::Path;

/// xorshift64*: a fixed sequence, so a failure names an input that fails again.
struct Mutations(u64);

impl Mutations {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }

    fn mutate(&mut self, seed: &[u8]) -> Vec<u8> {
        let mut bytes = seed.to_vec();
        for _ in 0..=self.below(4) {
            let len = bytes.len();
            match self.below(5) {
                0 if len > 0 => {
                    let at = self.below(len);
                    bytes[at] = self.next() as u8;
                }
                1 => {
                    let at = self.below(len + 1);
                    bytes.insert(at, self.next() as u8);
                }
                2 if len > 0 => {
                    bytes.remove(self.below(len));
                }
                3 if len > 0 => {
                    let at = self.below(len);
                    bytes[at] ^= 1 << self.below(8);
                }
                _ => {
                    let at = self.below(len + 1);
                    let text: &[u8] =
                        [&b"&"[..], b"=", b"%", b"%00", b"sig=", b"exp=", b"max=", b"dl=1", b"\n"]
                            [self.below(9)];
                    bytes.splice(at..at, text.iter().copied());
                }
            }
        }
        bytes
    }
}

#[test]
fn the_seed_corpus_and_inputs_derived_from_it_keep_every_property() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/signed_url");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&corpus)
        .unwrap_or_else(|err| panic!("{}: {err}", corpus.display()))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 5, "the seed corpus has {} inputs", seeds.len());
    for seed in &seeds {
        fuzz_input::check_properties(seed);
    }
    let mut mutations = Mutations(0x9e37_79b9_7f4a_7c15);
    for round in 0..20_000 {
        let seed = &seeds[round % seeds.len()];
        let input = mutations.mutate(seed);
        let outcome = std::panic::catch_unwind(|| fuzz_input::check_properties(&input));
        assert!(outcome.is_ok(), "derived input {round} fails: {input:?}");
    }
}
