//! The original's request type names and their wire ids (Perséphone's `ReqType` enum,
//! docs/design.md §3.4): the one table the server configuration, the workload files, the
//! client and the `kv` application read.
//!
//! Names compare ignoring case, `_`, `-` and blanks, so `NewOrder`, `NEW_ORDER` and
//! `new-order` are all [`NEW_ORDER`]. Tested below.

/// A request of no registered type (never sent by the original client).
pub const UNKNOWN: u32 = 0;
/// Micro-benchmark: short spin.
pub const SHORT: u32 = 1;
/// Micro-benchmark: long spin.
pub const LONG: u32 = 2;
/// The original's PAGE type (unused by its experiments).
pub const PAGE: u32 = 3;
/// The original's REGEX type (unused by its experiments).
pub const REGEX: u32 = 4;
/// TPC-C NewOrder.
pub const NEW_ORDER: u32 = 5;
/// TPC-C Payment.
pub const PAYMENT: u32 = 6;
/// TPC-C Delivery.
pub const DELIVERY: u32 = 7;
/// TPC-C OrderStatus.
pub const ORDER_STATUS: u32 = 8;
/// TPC-C StockLevel.
pub const STOCK_LEVEL: u32 = 9;
/// RocksDB point lookup.
pub const GET: u32 = 10;
/// RocksDB range scan.
pub const SCAN: u32 = 11;

/// Every name of the original's `ReqType` with its wire id, in id order.
pub const NAMES: [(&str, u32); 12] = [
    ("UNKNOWN", UNKNOWN),
    ("SHORT", SHORT),
    ("LONG", LONG),
    ("PAGE", PAGE),
    ("REGEX", REGEX),
    ("NEW_ORDER", NEW_ORDER),
    ("PAYMENT", PAYMENT),
    ("DELIVERY", DELIVERY),
    ("ORDER_STATUS", ORDER_STATUS),
    ("STOCK_LEVEL", STOCK_LEVEL),
    ("GET", GET),
    ("SCAN", SCAN),
];

/// The wire id of an original type name, if it is one.
pub fn id_of(name: &str) -> Option<u32> {
    let wanted = normalize(name);
    NAMES
        .iter()
        .find(|(known, _)| normalize(known) == wanted)
        .map(|&(_, id)| id)
}

/// The original name of a wire id, if it has one.
pub fn name_of(id: u32) -> Option<&'static str> {
    NAMES.iter().find(|&&(_, i)| i == id).map(|&(name, _)| name)
}

fn normalize(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_' && *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_ids_whatever_the_spelling() {
        for (name, id) in NAMES {
            assert_eq!(id_of(name), Some(id));
            assert_eq!(name_of(id), Some(name));
        }
        assert_eq!(id_of("NewOrder"), Some(NEW_ORDER));
        assert_eq!(id_of("new-order"), Some(5));
        assert_eq!(id_of(" Stock Level "), Some(9));
        assert_eq!(id_of("scan"), Some(11));
        assert_eq!(id_of("polpot"), None);
        assert_eq!(name_of(42), None);
    }
}
