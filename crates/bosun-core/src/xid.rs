//! NVIDIA XID error codes: the one table bosun's server, agent, simulator and docs share.
//!
//! `fatal` marks the codes the built-in health policy classifies UNHEALTHY (SPEC 8); every
//! other XID is DEGRADED. The built-in policy is checked against this table by a test, so
//! the two cannot drift apart.

/// One XID code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Xid {
    pub code: u32,
    pub name: &'static str,
    /// The machine should be taken out of service.
    pub fatal: bool,
}

const fn xid(code: u32, name: &'static str, fatal: bool) -> Xid {
    Xid { code, name, fatal }
}

/// Known XIDs, by code.
pub const XIDS: &[Xid] = &[
    xid(8, "GPU stopped processing (pushbuffer timeout)", false),
    xid(13, "Graphics engine exception", true),
    xid(31, "GPU memory page fault", true),
    xid(32, "Invalid or corrupted push buffer stream", true),
    xid(38, "Driver firmware error", false),
    xid(43, "GPU stopped processing", true),
    xid(45, "Preemptive cleanup, due to previous errors", true),
    xid(48, "Double-bit ECC error", true),
    xid(56, "Display engine error", false),
    xid(57, "Error programming video memory interface", false),
    xid(61, "Internal micro-controller breakpoint or warning", true),
    xid(62, "Internal micro-controller halt", true),
    xid(63, "ECC page retirement or row remapping recording event", true),
    xid(64, "ECC page retirement or row remapper recording failure", true),
    xid(68, "Video processor exception", true),
    xid(69, "Graphics engine class error", true),
    xid(74, "NVLink error", true),
    xid(79, "GPU has fallen off the bus", true),
    xid(92, "High single-bit ECC error rate", true),
    xid(94, "Contained ECC error", true),
    xid(95, "Uncontained ECC error", true),
    xid(100, "Unrecoverable GPU error", true),
    xid(109, "Context switch timeout", false),
    xid(119, "GSP RPC timeout", true),
    xid(120, "GSP error", true),
    xid(121, "C2C link error", false),
    xid(140, "Unrecovered ECC error", false),
];

/// The entry for `code`, if bosun knows it.
pub fn lookup(code: u32) -> Option<&'static Xid> {
    XIDS.iter().find(|x| x.code == code)
}

/// Whether the built-in policy treats `code` as fatal. Unknown codes are not.
pub fn is_fatal(code: u32) -> bool {
    lookup(code).is_some_and(|x| x.fatal)
}

/// Every fatal code, ascending.
pub fn fatal_codes() -> impl Iterator<Item = u32> {
    XIDS.iter().filter(|x| x.fatal).map(|x| x.code)
}

/// A short human name for `code`.
pub fn name(code: u32) -> &'static str {
    lookup(code).map_or("unknown XID", |x| x.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fatal_set_is_the_one_in_the_specification() {
        let fatal: Vec<u32> = fatal_codes().collect();
        assert_eq!(fatal, [13, 31, 32, 43, 45, 48, 61, 62, 63, 64, 68, 69, 74, 79, 92, 94, 95, 100, 119, 120]);
        assert!(is_fatal(79) && !is_fatal(8) && !is_fatal(999));
        assert_eq!(name(79), "GPU has fallen off the bus");
    }

    #[test]
    fn codes_are_unique_and_sorted() {
        assert!(XIDS.windows(2).all(|w| w[0].code < w[1].code));
    }
}
