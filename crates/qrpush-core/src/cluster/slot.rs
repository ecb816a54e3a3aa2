//! The hash slot of a key or channel, as the Redis Cluster specification defines it: CRC16
//! (the XMODEM variant: polynomial 0x1021, initial value 0, no reflection, no final XOR) of the
//! key's hash tag, modulo 16384.
//!
//! The hash tag is the part between the first `{` and the first `}` after it, when that part is
//! not empty; otherwise the whole key. Names that share a tag share a slot, hence a node.

/// Slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// CRC-16/XMODEM, bit by bit: a few hundred nanoseconds for a channel name, far below a round trip.
pub fn crc16(bytes: &[u8]) -> u16 {
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
}
