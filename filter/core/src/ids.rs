//! Identifiers: ULIDs (time-sortable, 48-bit milliseconds + 80 random bits, Crockford base32).
//! The caller supplies the randomness so the core never reaches for a host facility.

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

pub fn ulid(unix_millis: u64, random: [u8; 10]) -> String {
    let mut value: u128 = u128::from(unix_millis & 0xFFFF_FFFF_FFFF) << 80;
    for (i, b) in random.iter().enumerate() {
        value |= u128::from(*b) << (8 * (9 - i));
    }
    let mut out = [0u8; 26];
    for (i, slot) in out.iter_mut().enumerate() {
        let shift = 5 * (25 - i);
        let index = ((value >> shift) & 0x1F) as usize;
        *slot = CROCKFORD.get(index).copied().unwrap_or(b'0');
    }
    out.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulids_are_sortable_and_fixed_width() {
        let a = ulid(1_700_000_000_000, [0xFF; 10]);
        let b = ulid(1_700_000_000_001, [0; 10]);
        assert_eq!(a.len(), 26);
        assert!(a < b);
        // Known vector: time 0 and zero randomness is all zeros; max randomness ends in Z's.
        assert_eq!(ulid(0, [0; 10]), "00000000000000000000000000");
        assert_eq!(ulid(0, [0xFF; 10]), "0000000000ZZZZZZZZZZZZZZZZ");
    }
}
