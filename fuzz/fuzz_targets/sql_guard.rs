//! The allow-list guard for model-written SQL and the query rewriting helpers, under both dialects' lexical
//! rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tuneup_eval::sql::guard::{check_query, Dialect};
use tuneup_eval::sql::{has_any_order_by, has_top_level_order_by, remove_distinct};

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        let _ = check_query(sql, dialect);
    }
    let _ = has_top_level_order_by(sql);
    let _ = has_any_order_by(sql);
    let _ = remove_distinct(sql);
});
