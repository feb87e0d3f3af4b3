//! Sizes and durations as people write and read them: `64MiB`, `5M`, `1.5 GiB`; `30s`, `15m`,
//! `1h`, `7d`; plain numbers are bytes and seconds. The client's flags and the server's flags and
//! settings file read them alike.

use crate::client::error::{CliError, CliResult};

/// Parses a byte count: a plain number, or with a unit (`k`/`KB`/`KiB` … `T`; all binary).
pub fn parse_size(raw: &str) -> CliResult<u64> {
    let text = raw.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 =
        number.parse().map_err(|_| CliError::usage(format!("not a size: {raw:?} (try 64MiB or 5000000)")))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => {
            return Err(CliError::usage(format!("unknown size unit in {raw:?} (use B, KiB, MiB, GiB, TiB)")))
        }
    };
    Ok((number * multiplier as f64).round() as u64)
}

/// Parses a duration in seconds: `90`, `30s`, `15m`, `1h`, `7d`, `1h30m`.
pub fn parse_duration(raw: &str) -> CliResult<u64> {
    let bad = || CliError::usage(format!("not a duration: {raw:?} (try 30s, 15m, 1h or 7d)"));
    let text = raw.trim().to_ascii_lowercase();
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(seconds);
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = total.checked_add(n.checked_mul(unit).ok_or_else(bad)?).ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() {
        return Err(bad());
    }
    Ok(total)
}

/// `1536` → `1.5 KiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("5000").unwrap(), 5000);
        assert_eq!(parse_size("5MiB").unwrap(), 5 << 20);
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("1.5 GiB").unwrap(), 3 << 29);
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn durations_parse_in_seconds() {
        assert_eq!(parse_duration("90").unwrap(), 90);
        assert_eq!(parse_duration("30s").unwrap(), 30);
        assert_eq!(parse_duration("15m").unwrap(), 900);
        assert_eq!(parse_duration("1h").unwrap(), 3600);
        assert_eq!(parse_duration("7d").unwrap(), 604_800);
        assert_eq!(parse_duration("1h30m").unwrap(), 5400);
        assert!(parse_duration("1x").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("10m5").is_err());
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(200 << 20), "200 MiB");
    }
}
