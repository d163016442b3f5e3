//! PostgreSQL result values (binary wire format) as [`CellValue`]s.
//!
//! Numbers become `Integer`/`Real` with the same normalization as SQLite values (`numeric` and `float` values
//! with an integral value are integers), `bool` becomes 0/1 (SQLite's booleans), text-like types become text,
//! `bytea` a blob, and `date`/`timestamp`/`timestamptz` their ISO text (`2024-01-31`, `2024-01-31 12:00:00.5`,
//! `2024-01-31 12:00:00+00`, always UTC). Any other type is read as its text form: the query is wrapped so the
//! server casts those columns to `text` ([`needs_text_cast`]).

use std::error::Error;

use postgres::types::{FromSql, Kind, Type};

use crate::sql::compare::CellValue;

/// How a column's binary value is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decoder {
    Bool,
    Int2,
    Int4,
    Int8,
    Oid,
    Float4,
    Float8,
    Numeric,
    Text,
    Jsonb,
    Bytea,
    Date,
    Timestamp,
    Timestamptz,
}

/// The decoder for a column type, following domains to their base type; `None` when the value must be cast to
/// text by the server.
pub(super) fn decoder(ty: &Type) -> Option<Decoder> {
    match ty.kind() {
        Kind::Domain(base) => return decoder(base),
        // An enum's binary form is its label.
        Kind::Enum(_) => return Some(Decoder::Text),
        _ => {}
    }
    const TABLE: [(Type, Decoder); 20] = [
        (Type::BOOL, Decoder::Bool),
        (Type::INT2, Decoder::Int2),
        (Type::INT4, Decoder::Int4),
        (Type::INT8, Decoder::Int8),
        (Type::OID, Decoder::Oid),
        (Type::FLOAT4, Decoder::Float4),
        (Type::FLOAT8, Decoder::Float8),
        (Type::NUMERIC, Decoder::Numeric),
        (Type::TEXT, Decoder::Text),
        (Type::VARCHAR, Decoder::Text),
        (Type::BPCHAR, Decoder::Text),
        (Type::NAME, Decoder::Text),
        (Type::CHAR, Decoder::Text),
        (Type::UNKNOWN, Decoder::Text),
        (Type::JSON, Decoder::Text),
        (Type::JSONB, Decoder::Jsonb),
        (Type::BYTEA, Decoder::Bytea),
        (Type::DATE, Decoder::Date),
        (Type::TIMESTAMP, Decoder::Timestamp),
        (Type::TIMESTAMPTZ, Decoder::Timestamptz),
    ];
    TABLE.iter().find(|(t, _)| t == ty).map(|&(_, d)| d)
}

/// `true` when a column of type `ty` is read through a server-side `::text` cast.
pub(super) fn needs_text_cast(ty: &Type) -> bool {
    decoder(ty).is_none()
}

/// A column value as raw bytes (`None` for NULL), whatever its type.
pub(super) struct Raw<'a>(pub Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(Raw(Some(raw)))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(Raw(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Decodes one binary value; the error names the type and what was wrong.
pub(super) fn decode(decoder: Decoder, raw: Option<&[u8]>) -> Result<CellValue, String> {
    let Some(raw) = raw else {
        return Ok(CellValue::Null);
    };
    let fixed = |n: usize| -> Result<&[u8], String> {
        (raw.len() == n)
            .then_some(raw)
            .ok_or_else(|| format!("{decoder:?} value of {} bytes, expected {n}", raw.len()))
    };
    Ok(match decoder {
        Decoder::Bool => CellValue::Integer(i64::from(fixed(1)?[0] != 0)),
        Decoder::Int2 => CellValue::Integer(i64::from(i16::from_be_bytes(array(fixed(2)?)))),
        Decoder::Int4 => CellValue::Integer(i64::from(i32::from_be_bytes(array(fixed(4)?)))),
        Decoder::Int8 => CellValue::Integer(i64::from_be_bytes(array(fixed(8)?))),
        Decoder::Oid => CellValue::Integer(i64::from(u32::from_be_bytes(array(fixed(4)?)))),
        Decoder::Float4 => {
            // Through the shortest decimal form, as PostgreSQL prints a float4 (0.1f32 reads as 0.1).
            let f = f32::from_be_bytes(array(fixed(4)?));
            CellValue::from_real(f.to_string().parse::<f64>().unwrap_or(f64::from(f)))
        }
        Decoder::Float8 => CellValue::from_real(f64::from_be_bytes(array(fixed(8)?))),
        Decoder::Numeric => numeric(raw)?,
        Decoder::Text => CellValue::Text(raw.to_vec()),
        Decoder::Jsonb => match raw.split_first() {
            Some((1, text)) => CellValue::Text(text.to_vec()),
            _ => return Err("jsonb value with an unknown version byte".into()),
        },
        Decoder::Bytea => CellValue::Blob(raw.to_vec()),
        Decoder::Date => CellValue::Text(date(i32::from_be_bytes(array(fixed(4)?))).into_bytes()),
        Decoder::Timestamp => {
            CellValue::Text(timestamp(i64::from_be_bytes(array(fixed(8)?)), "").into_bytes())
        }
        Decoder::Timestamptz => {
            CellValue::Text(timestamp(i64::from_be_bytes(array(fixed(8)?)), "+00").into_bytes())
        }
    })
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

/// A `numeric` value: `ndigits`, `weight`, `sign`, `dscale` (i16/i16/u16/u16), then base-10000 digits.
fn numeric(raw: &[u8]) -> Result<CellValue, String> {
    let word = |i: usize| -> Result<u16, String> {
        raw.get(2 * i..2 * i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| format!("numeric value truncated at {} bytes", raw.len()))
    };
    let ndigits = usize::from(word(0)?);
    let weight = i64::from(word(1)? as i16);
    let sign = word(2)?;
    match sign {
        0xC000 => return Ok(CellValue::from_real(f64::NAN)),
        0xD000 => return Ok(CellValue::from_real(f64::INFINITY)),
        0xF000 => return Ok(CellValue::from_real(f64::NEG_INFINITY)),
        0x0000 | 0x4000 => {}
        other => return Err(format!("numeric value with sign word {other:#x}")),
    }
    let mut mantissa = String::with_capacity(4 * ndigits);
    for i in 0..ndigits {
        mantissa.push_str(&format!("{:04}", word(4 + i)?));
    }
    let mantissa = mantissa.trim_start_matches('0');
    if mantissa.is_empty() {
        return Ok(CellValue::Integer(0));
    }
    let minus = if sign == 0x4000 { "-" } else { "" };
    // value = mantissa × 10^(4 × (weight − ndigits + 1))
    let exponent = 4 * (weight - ndigits as i64 + 1);
    if (0..=18).contains(&exponent) {
        let digits = format!("{minus}{mantissa}{}", "0".repeat(exponent as usize));
        if let Ok(i) = digits.parse::<i64>() {
            return Ok(CellValue::Integer(i));
        }
    }
    format!("{minus}{mantissa}e{exponent}")
        .parse::<f64>()
        .map(CellValue::from_real)
        .map_err(|e| format!("numeric value {minus}{mantissa}e{exponent}: {e}"))
}

/// Days since 2000-01-01 as PostgreSQL's ISO date text.
fn date(days: i32) -> String {
    match days {
        i32::MAX => "infinity".into(),
        i32::MIN => "-infinity".into(),
        d => civil(i64::from(d) + DAYS_1970_TO_2000).to_string(),
    }
}

/// Microseconds since 2000-01-01 00:00:00 as PostgreSQL's ISO timestamp text, with `zone` appended.
fn timestamp(micros: i64, zone: &str) -> String {
    match micros {
        i64::MAX => "infinity".into(),
        i64::MIN => "-infinity".into(),
        us => {
            const DAY: i64 = 86_400_000_000;
            let (days, in_day) = (us.div_euclid(DAY), us.rem_euclid(DAY));
            let secs = in_day / 1_000_000;
            let fraction = in_day % 1_000_000;
            let date = civil(days + DAYS_1970_TO_2000);
            let mut time = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
            if fraction != 0 {
                let digits = format!("{fraction:06}");
                time.push('.');
                time.push_str(digits.trim_end_matches('0'));
            }
            match date.bc {
                false => format!("{} {time}{zone}", date.ymd()),
                true => format!("{} {time}{zone} BC", date.ymd()),
            }
        }
    }
}

const DAYS_1970_TO_2000: i64 = 10_957;

struct Civil {
    year: i64,
    month: u32,
    day: u32,
    bc: bool,
}

impl Civil {
    fn ymd(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl std::fmt::Display for Civil {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.ymd())?;
        if self.bc {
            f.write_str(" BC")?;
        }
        Ok(())
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`); years
/// ≤ 0 are written as PostgreSQL does (`0001-01-01 BC` is year 0).
fn civil(days: i64) -> Civil {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    if year <= 0 {
        Civil {
            year: 1 - year,
            month,
            day,
            bc: true,
        }
    } else {
        Civil {
            year,
            month,
            day,
            bc: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_bytes(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut out = Vec::new();
        for w in [digits.len() as u16, weight as u16, sign, dscale]
            .iter()
            .chain(digits)
        {
            out.extend_from_slice(&w.to_be_bytes());
        }
        out
    }

    #[test]
    fn numerics_normalize_like_sqlite_reals() {
        let n = |w, s, d, digits: &[u16]| numeric(&numeric_bytes(w, s, d, digits)).unwrap();
        assert_eq!(n(0, 0, 0, &[]), CellValue::Integer(0));
        assert_eq!(n(0, 0, 0, &[42]), CellValue::Integer(42));
        assert_eq!(n(1, 0x4000, 0, &[12, 3456]), CellValue::Integer(-123_456));
        // 2.50 and 2.0
        assert_eq!(n(0, 0, 2, &[2, 5000]), CellValue::from_real(2.5));
        assert_eq!(n(0, 0, 1, &[2]), CellValue::Integer(2));
        // 0.0001 (weight −1) and 1e20 (weight 5, one digit)
        assert_eq!(n(-1, 0, 4, &[1]), CellValue::from_real(0.0001));
        assert_eq!(n(5, 0, 0, &[1]), CellValue::from_real(1e20));
        // avg(…) = 3.3333333333333333 reads as the f64 SQLite computes for 10/3.
        assert_eq!(
            n(0, 0, 16, &[3, 3333, 3333, 3333, 3333]),
            CellValue::from_real(10.0 / 3.0)
        );
        assert!(numeric(&[0, 1]).is_err());
    }

    #[test]
    fn dates_and_timestamps_are_iso_text() {
        assert_eq!(date(0), "2000-01-01");
        assert_eq!(date(-1), "1999-12-31");
        assert_eq!(date(59), "2000-02-29");
        assert_eq!(date(-730_119), "0001-01-01");
        assert_eq!(date(-730_120), "0001-12-31 BC");
        assert_eq!(date(i32::MAX), "infinity");
        assert_eq!(timestamp(0, ""), "2000-01-01 00:00:00");
        assert_eq!(timestamp(-1, "+00"), "1999-12-31 23:59:59.999999+00");
        assert_eq!(
            timestamp(86_400_000_000 + 3_723_500_000, ""),
            "2000-01-02 01:02:03.5"
        );
    }

    #[test]
    fn fixed_width_values_check_their_length() {
        assert_eq!(
            decode(Decoder::Int4, Some(&[0, 0, 1, 0])),
            Ok(CellValue::Integer(256))
        );
        assert_eq!(
            decode(Decoder::Float4, Some(&0.1f32.to_be_bytes())),
            Ok(CellValue::from_real(0.1))
        );
        assert_eq!(decode(Decoder::Bool, Some(&[1])), Ok(CellValue::Integer(1)));
        assert_eq!(decode(Decoder::Text, None), Ok(CellValue::Null));
        assert!(decode(Decoder::Int8, Some(&[0, 1])).is_err());
    }
}
