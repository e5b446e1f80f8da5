//! Byte sizes as operators write them: `68719476736`, `512MiB`, `64GiB`.
//!
//! Binary units only (`KiB`, `MiB`, `GiB`, `TiB`): memory and disks are allocated in them,
//! and `GB` would be ambiguous (Proxmox means GiB, a disk vendor means 10^9), so it is
//! refused rather than guessed.

use crate::validation::MAX_STORED_INT;

const UNITS: [(&str, u32); 4] = [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)];

/// The words of an error about a size that did not parse.
pub const SIZE_HINT: &str = "a size in bytes such as 68719476736, 512MiB or 64GiB";

/// A byte count, bare or with a binary unit, at most `MAX_STORED_INT` (what a store
/// keeps). `None` for anything else.
pub fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let shift = match unit.trim() {
        "" | "B" => 0,
        unit => UNITS.iter().find(|(name, _)| *name == unit)?.1,
    };
    let bytes = number.parse::<u64>().ok()?.checked_mul(1 << shift)?;
    (bytes <= MAX_STORED_INT).then_some(bytes)
}

/// `bytes` in the largest binary unit that holds it exactly (`64GiB`, `1536MiB`), else as
/// a bare number; [`parse_bytes`] reads it back.
pub fn format_bytes(bytes: u64) -> String {
    UNITS
        .iter()
        .find(|(_, shift)| bytes != 0 && bytes.trailing_zeros() >= *shift)
        .map_or_else(|| bytes.to_string(), |(unit, shift)| format!("{}{unit}", bytes >> shift))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_bare_or_with_binary_units() {
        for (text, bytes) in
            [("2048", 2048), ("512MiB", 512 << 20), (" 64GiB ", 64 << 30), ("1KiB", 1024), ("3B", 3), ("2TiB", 2 << 40)]
        {
            assert_eq!(parse_bytes(text), Some(bytes), "{text}");
        }
        for bad in ["", "8GB", "1.5GiB", "-1", "GiB", "9000000TiB", "99999999999999999999"] {
            assert_eq!(parse_bytes(bad), None, "{bad}");
        }
    }

    #[test]
    fn sizes_format_in_the_largest_exact_unit_and_read_back() {
        for (bytes, text) in [(0, "0"), (1000, "1000"), (1024, "1KiB"), (1536 << 20, "1536MiB"), (64 << 30, "64GiB")] {
            assert_eq!(format_bytes(bytes), text);
            assert_eq!(parse_bytes(text), Some(bytes));
        }
    }
}
