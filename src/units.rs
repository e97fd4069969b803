//! Sizes (`65536`, `64KiB`, `1MiB`) and durations (`500ms`, `30s`, `2m`) as the command line
//! and the environment write them, checked with a sentence that says what to type instead.

use std::time::Duration;

/// A size of one message or one connection's buffer: at most 64 MiB.
pub fn parse_size(text: &str) -> Result<usize, String> {
    parse_size_up_to(text, 64 << 20, "64MiB")
}

/// A size of memory across the whole server: at most 1 TiB.
pub fn parse_total_size(text: &str) -> Result<usize, String> {
    parse_size_up_to(text, 1 << 40, "1TiB")
}

fn parse_size_up_to(text: &str, most: u64, most_text: &str) -> Result<usize, String> {
    let size: bytesize::ByteSize = text
        .parse()
        .map_err(|_| format!("{text:?} is not a size (try 65536, 64KiB or 1MiB)"))?;
    match size.as_u64() {
        0 => Err("the size must be more than 0".into()),
        bytes if bytes <= most => usize::try_from(bytes)
            .map_err(|_| format!("{text:?} is more than this machine can address")),
        _ => Err(format!("the size must be at most {most_text}")),
    }
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration_or_zero(text)?;
    if duration.is_zero() {
        return Err("the duration must be more than 0".into());
    }
    Ok(duration)
}

/// A duration where 0 means "off" (`0`, `0s`, `0ms`…).
pub fn parse_duration_or_zero(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration (try 500ms, 30s or 2m): {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_are_checked() {
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert!(parse_size("0").is_err());
        assert!(parse_size("1GiB").is_err());
        assert!(parse_size("lots").is_err());
        assert_eq!(parse_total_size("1GiB"), Ok(1 << 30));
        assert!(parse_total_size("2TiB").is_err());
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("0s").is_err());
        for off in ["0", "0s", "0ms"] {
            assert_eq!(parse_duration_or_zero(off), Ok(Duration::ZERO), "{off}");
        }
        assert_eq!(parse_duration_or_zero("10s"), Ok(Duration::from_secs(10)));
        assert!(parse_duration_or_zero("soon").is_err());
    }
}
