//! The hash slot of a key or channel, as the Redis Cluster specification defines it: CRC16
//! (the XMODEM variant: polynomial 0x1021, initial value 0, no reflection, no final XOR) of the
//! key's hash tag, modulo 16384.
//!
//! The hash tag is the part between the first `{` and the first `}` after it, when that part is
//! not empty; otherwise the whole key. Names that share a tag share a slot, hence a node.

/// Slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// CRC-16/XMODEM of every byte value, computed at compile time: one lookup per byte instead of
/// eight shift-and-xor steps (every publish on a Cluster hashes its channel).
const CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut crc = (byte as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[byte] = crc;
        byte += 1;
    }
    table
};

/// CRC-16/XMODEM, a table lookup per byte.
pub fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &byte| {
        (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ byte)]
    })
}

/// The part of `key` that is hashed: its non-empty `{tag}`, else all of it.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

/// The slot of `key`.
pub fn slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) % SLOTS
}

/// The slot of `prefix` followed by `name` (a prefixed channel), without joining them when the
/// prefix holds no `{`.
pub fn prefixed_slot(prefix: &[u8], name: &[u8]) -> u16 {
    if prefix.is_empty() {
        return slot(name);
    }
    let mut key = Vec::with_capacity(prefix.len() + name.len());
    key.extend_from_slice(prefix);
    key.extend_from_slice(name);
    slot(&key)
}

/// A short name whose slot is `slot`: the first of "0", "1", ... "z", "10", ... (counting in
/// base 36) that hashes to it. It lets a key land in the slot of a name it cannot contain (a
/// login key in the slot of its event channel, which carries the login id the key must not):
/// `{tag}` in the key makes the key's slot `slot`.
///
/// The rule is fixed forever: every process, version and machine must derive the same key.
pub fn tag_for_slot(slot: u16) -> String {
    static TABLE: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        // Every slot is reached before 87 573 (checked by a test): about a millisecond, once
        // per process.
        let mut table = vec![u32::MAX; usize::from(SLOTS)];
        let mut missing = usize::from(SLOTS);
        let mut n = 0u32;
        while missing > 0 {
            let entry = &mut table[usize::from(crc16(base36(n).as_bytes()) % SLOTS)];
            if *entry == u32::MAX {
                *entry = n;
                missing -= 1;
            }
            n += 1;
        }
        table
    });
    base36(table[usize::from(slot % SLOTS)])
}

/// `n` in base 36, lowercase digits and letters.
fn base36(mut n: u32) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::with_capacity(4);
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_check_value() {
        // The CRC-16/XMODEM check value, also the example of the Cluster specification.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16(b""), 0);
    }

    #[test]
    fn crc16_table_matches_the_bitwise_definition() {
        fn bitwise(bytes: &[u8]) -> u16 {
            let mut crc: u16 = 0;
            for &byte in bytes {
                crc ^= u16::from(byte) << 8;
                for _ in 0..8 {
                    crc = if crc & 0x8000 != 0 {
                        (crc << 1) ^ 0x1021
                    } else {
                        crc << 1
                    };
                }
            }
            crc
        }
        let all: Vec<u8> = (0..=255).collect();
        for len in 0..all.len() {
            assert_eq!(
                crc16(&all[..len]),
                bitwise(&all[..len]),
                "first {len} byte values"
            );
        }
        assert_eq!(crc16(b"bench:events:0"), bitwise(b"bench:events:0"));
    }

    #[test]
    fn hash_tags() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"{user1000}.following", b"user1000"),
            (b"foo{}{bar}", b"foo{}{bar}"),
            (b"foo{{bar}}zap", b"{bar"),
            (b"foo{bar}{zap}", b"bar"),
            (b"no tag", b"no tag"),
            (b"open{only", b"open{only"),
            (b"}{x}", b"x"),
        ];
        for (key, tag) in cases {
            assert_eq!(hash_tag(key), *tag, "{:?}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn slots_match_known_values() {
        // Values printed by CLUSTER KEYSLOT on Redis 8.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"bar"), 5061);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(prefixed_slot(b"env:", b"chan"), slot(b"env:chan"));
        assert_eq!(prefixed_slot(b"", b"chan"), slot(b"chan"));
    }

    #[test]
    fn every_slot_has_a_short_tag_of_its_own() {
        for s in 0..SLOTS {
            let tag = tag_for_slot(s);
            assert!((1..=4).contains(&tag.len()), "{s}: {tag}");
            assert_eq!(slot(format!("qrpush:login:{{{tag}}}x").as_bytes()), s);
        }
        // The rule never changes (keys of logins in flight depend on it).
        assert_eq!(tag_for_slot(0), "1bz");
        assert_eq!(slot(b"qr-login-events"), 11805);
        assert_eq!(tag_for_slot(11805), "86l");
        assert_eq!(tag_for_slot(16383), "hia");
        assert_eq!(base36(87_572).len(), 4);
    }
}
