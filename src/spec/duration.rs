//! Durations written as `90s`, `30m`, `1h30m`, `1.5h`.

use std::time::Duration;

/// Parses one or more `<number><unit>` parts (units `h`, `m`, `s`), e.g. `1h30m`. The total must
/// be positive.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = 0.0f64;
    let mut rest = s;
    let mut seen = String::new();
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!("expected a number at `{rest}`"));
        }
        let n: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("bad number `{}`", &rest[..num_len]))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = rest[..unit_len].trim();
        let secs = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "" => return Err(format!("`{s}` has no unit")),
            other => return Err(format!("unknown unit `{other}` (use h, m or s)")),
        };
        if rest[..unit_len] != *unit {
            return Err("spaces are not allowed".into());
        }
        if seen.contains(unit) {
            return Err(format!("unit `{unit}` appears twice"));
        }
        seen.push_str(unit);
        total += n * secs;
        rest = &rest[unit_len..];
    }
    if total <= 0.0 || !total.is_finite() {
        return Err("must be longer than zero".into());
    }
    // A year is far beyond any training run; it also keeps the value convertible.
    const MAX_S: f64 = 366.0 * 24.0 * 3600.0;
    if total > MAX_S {
        return Err("longer than a year; did you mean a smaller number?".into());
    }
    Ok(Duration::from_secs_f64(total))
}

/// The inverse of [`parse_duration`] for whole seconds: `1h30m`, `90s` → `1m30s`, `10m`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out += &format!("{h}h");
    }
    if m > 0 {
        out += &format!("{m}m");
    }
    if s > 0 || out.is_empty() {
        out += &format!("{s}s");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (text, secs) in [
            ("90s", 90),
            ("30m", 1800),
            ("1h30m", 5400),
            ("1.5h", 5400),
            ("2m30s", 150),
            ("1h", 3600),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
        for bad in [
            "",
            "30",
            "10x",
            "m",
            "0s",
            "1m1m",
            "-5s",
            "10 m",
            "10 minutes",
            "5min",
            "99999999999999999999h",
            "9000h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(600)), "10m");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
    }
}
