//! The durable scripts and how they run: EVALSHA first, EVAL when Redis does not know the script
//! yet. A NOSCRIPT reply means the script did not run at all, so the fallback is never a duplicate.

use std::sync::OnceLock;

use sha1::{Digest, Sha1};

use crate::connection::Packer;

/// A Lua script and its SHA-1 (what EVALSHA names it by).
pub(crate) struct Script {
    pub(crate) source: &'static str,
    sha: OnceLock<String>,
}

/// The publish: XADD, trim, PUBLISH with the header (see `publish.lua`).
pub(crate) static PUBLISH: Script = Script::new(include_str!("publish.lua"));
/// The replay read (see `replay.lua`).
pub(crate) static REPLAY: Script = Script::new(include_str!("replay.lua"));

impl Script {
    const fn new(source: &'static str) -> Script {
        Script {
            source,
            sha: OnceLock::new(),
        }
    }

    /// The script's SHA-1 in lowercase hex.
    pub(crate) fn sha(&self) -> &str {
        self.sha.get_or_init(|| {
            Sha1::digest(self.source.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        })
    }

    /// Packs one run: EVALSHA (`by_sha`) or EVAL, with two keys and `args`.
    pub(crate) fn pack(&self, p: &mut Packer<'_>, by_sha: bool, keys: [&[u8]; 2], args: &[&[u8]]) {
        p.command(|cmd| {
            if by_sha {
                cmd.arg("EVALSHA").arg(self.sha());
            } else {
                cmd.arg("EVAL").arg(self.source);
            }
            cmd.arg(2).arg(keys[0]).arg(keys[1]);
            for a in args {
                cmd.arg(*a);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shas_are_distinct_sha1_hex() {
        for script in [&PUBLISH, &REPLAY] {
            assert_eq!(script.sha().len(), 40);
            assert!(script.sha().bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_ne!(PUBLISH.sha(), REPLAY.sha());
    }
}
