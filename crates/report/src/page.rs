//! The page shell every report uses: one inline style sheet, a title, nothing fetched.

use crate::bars::escape;

/// The shared page style.
pub const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}\
table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}\
th{background:#f3f3f3}pre{white-space:pre-wrap;word-break:break-word;margin:0;max-height:260px;overflow:auto;font-size:12px}\
.sig{color:#b00;font-weight:bold}.chart{margin:8px 16px 16px 0}.num{text-align:right;font-variant-numeric:tabular-nums}\
.warn{background:#fff4e5;border-left:4px solid #f28e2b;padding:6px 10px}.ok{color:#2a7a2a;font-weight:bold}";

/// Opens an HTML page titled `title` (escaped) with the shared style and an `<h1>`.
pub fn page_start(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title><style>{STYLE}</style></head><body>\n<h1>{t}</h1>\n",
        t = escape(title)
    )
}

/// Closes a page opened by [`page_start`].
pub fn page_end() -> &'static str {
    "</body></html>\n"
}
