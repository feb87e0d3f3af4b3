//! Writes the seed corpus of the `signed_url` fuzz target: a few valid signed queries (uploads
//! and downloads, inline and attachment, each with a different edit), encoded as fuzz inputs.
//!   cargo run --manifest-path fuzz/Cargo.toml --example seed_corpus

use cabinet_core::signing::{SignedOperation, SignedParams};
use cabinet_fuzz::{signer, Edit, Input, NOW};

fn main() -> std::io::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/signed_url");
    std::fs::create_dir_all(&dir)?;
    let seeds = [
        ("upload", SignedOperation::Upload, 3600, 1_048_576, false, Edit::Replace, 9, b'9'),
        ("upload-small", SignedOperation::Upload, 60, 1, false, Edit::Insert, 30, b'&'),
        ("download", SignedOperation::Download, 300, 0, false, Edit::Remove, 50, 0),
        ("download-attachment", SignedOperation::Download, 86_400, 0, true, Edit::Truncate, 40, 0),
        ("download-expired", SignedOperation::Download, -1, 0, false, Edit::Replace, 0, b'E'),
    ];
    for (name, op, ttl, max_bytes, attachment, edit, edit_at, edit_byte) in seeds {
        let params = SignedParams { expires: NOW + ttl, max_bytes, attachment };
        let (workspace, object) = ("ws_01JFUZZ0000000000000000000", "upl_01JFUZZ0000000000000000000");
        let query = signer().sign(op, workspace, object, &params);
        let input = Input {
            op,
            params,
            edit,
            edit_at,
            edit_byte,
            workspace: workspace.to_owned(),
            object: object.to_owned(),
            query,
        };
        std::fs::write(dir.join(name), input.encode())?;
        println!("{name}: {}", input.query);
    }
    Ok(())
}
