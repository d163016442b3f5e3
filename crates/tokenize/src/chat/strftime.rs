//! A small `strftime` for `strftime_now(format)` in chat templates (UTC).

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// A broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DateTime {
    year: i64,
    month: u32, // 1..=12
    day: u32,   // 1..=31
    hour: u32,
    minute: u32,
    second: u32,
    weekday: u32, // 0 = Monday
    yday: u32,    // 1..=366
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Converts seconds since the Unix epoch to a UTC date (Howard Hinnant's algorithm).
pub(crate) fn from_unix(secs: i64) -> DateTime {
    // Keep to years 0..=9999 so that the arithmetic below cannot overflow.
    let secs = secs.clamp(-62_167_219_200, 253_402_300_799);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    const CUM: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = CUM[(month - 1) as usize] + day + u32::from(month > 2 && is_leap(year));
    DateTime {
        year,
        month,
        day,
        hour: (rem / 3600) as u32,
        minute: (rem % 3600 / 60) as u32,
        second: (rem % 60) as u32,
        // 1970-01-01 was a Thursday.
        weekday: (days + 3).rem_euclid(7) as u32,
        yday,
    }
}

/// One directive's expansion (`None` for directives this does not know).
fn directive(t: &DateTime, d: char) -> Option<String> {
    let month = MONTHS[(t.month - 1) as usize];
    let day = DAYS[t.weekday as usize];
    let hour12 = if t.hour.is_multiple_of(12) {
        12
    } else {
        t.hour % 12
    };
    Some(match d {
        'Y' => t.year.to_string(),
        'y' => format!("{:02}", t.year.rem_euclid(100)),
        'm' => format!("{:02}", t.month),
        'd' => format!("{:02}", t.day),
        'e' => format!("{:>2}", t.day),
        'H' => format!("{:02}", t.hour),
        'I' => format!("{hour12:02}"),
        'M' => format!("{:02}", t.minute),
        'S' => format!("{:02}", t.second),
        'p' => if t.hour < 12 { "AM" } else { "PM" }.to_string(),
        'B' => month.to_string(),
        'b' | 'h' => month[..3].to_string(),
        'A' => day.to_string(),
        'a' => day[..3].to_string(),
        'j' => format!("{:03}", t.yday),
        'w' => ((t.weekday + 1) % 7).to_string(),
        'u' => (t.weekday + 1).to_string(),
        'F' => format!("{}-{:02}-{:02}", t.year, t.month, t.day),
        'T' => format!("{:02}:{:02}:{:02}", t.hour, t.minute, t.second),
        'D' => format!("{:02}/{:02}/{:02}", t.month, t.day, t.year.rem_euclid(100)),
        'Z' => "UTC".to_string(),
        'z' => "+0000".to_string(),
        'f' => "000000".to_string(),
        '%' => "%".to_string(),
        _ => return None,
    })
}

/// Formats like Python's `datetime.strftime` (glibc flavour, including the `%-d` style
/// "no padding" flag) for the common directives; unknown directives are copied through.
pub(crate) fn strftime(t: &DateTime, format: &str) -> String {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let no_pad = chars.peek() == Some(&'-');
        if no_pad {
            chars.next();
        }
        let Some(d) = chars.next() else {
            out.push('%');
            if no_pad {
                out.push('-');
            }
            break;
        };
        match directive(t, d) {
            Some(s) if no_pad => {
                let trimmed = s.trim_start_matches(['0', ' ']);
                out.push_str(if trimmed.is_empty() { "0" } else { trimmed });
            }
            Some(s) => out.push_str(&s),
            None => {
                out.push('%');
                if no_pad {
                    out.push('-');
                }
                out.push(d);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        // 2024-07-26 12:34:56 UTC, a Friday.
        let t = from_unix(1_721_997_296);
        assert_eq!(strftime(&t, "%d %b %Y"), "26 Jul 2024");
        assert_eq!(
            strftime(&t, "%A %B %-d %H:%M:%S %j %%"),
            "Friday July 26 12:34:56 208 %"
        );
        assert_eq!(
            strftime(&from_unix(0), "%Y-%m-%d %a %-m %q"),
            "1970-01-01 Thu 1 %q"
        );
        assert_eq!(
            strftime(&from_unix(951_782_400), "%F %a %j"),
            "2000-02-29 Tue 060"
        );
        assert_eq!(strftime(&from_unix(-86_400), "%F"), "1969-12-31");
        assert_eq!(
            strftime(&from_unix(i64::MAX), "%F %T"),
            "9999-12-31 23:59:59"
        );
        assert_eq!(strftime(&from_unix(i64::MIN), "%F"), "0-01-01");
    }
}
