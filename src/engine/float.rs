//! INCRBYFLOAT's numbers. Redis adds in 80-bit long double and prints the sum with 17
//! fixed decimals (`%.17Lf`), trailing zeros trimmed; so `0.1 + 0.2` answers `0.3`, not the
//! `0.30000000000000004` of a double. Rust has no long double, so when both numbers are
//! plain decimals (what clients send) cstore adds them exactly in decimal and rounds to 17
//! decimals: the same digits Redis prints whenever its long double is exact enough to
//! hide its binary error at 17 decimals (magnitudes below about 100), and the decimal a
//! person expects above that, where Redis prints binary noise. Other inputs (`inf`, more
//! than 38 digits) fall back to `f64` with the same printing rules. The range is f64's: a
//! number between f64's largest (1.8e308) and long double's (1.2e4932) is an infinity here,
//! so adding to it fails where Redis adds; past long double's, both refuse it as not a float.

use super::compact::CompactBytes;
use super::ops::StoreError;

/// Decimal places Redis prints (`%.17Lf`).
const PRINTED_DECIMALS: u32 = 17;
/// Most decimal places kept exactly; 10^38 still fits an i128.
const MAX_SCALE: u32 = 38;

/// A number as INCRBYFLOAT reads it: the double, and the exact decimal when there is one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Float {
    value: f64,
    decimal: Option<Decimal>,
}

/// `coefficient / 10^scale`, exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Decimal {
    coefficient: i128,
    scale: u32,
}

impl Float {
    pub fn value(self) -> f64 {
        self.value
    }
}

impl From<f64> for Float {
    /// The double's shortest decimal form, exactly (so `0.1` is the decimal 0.1).
    fn from(value: f64) -> Self {
        let decimal = if value.is_finite() { parse_decimal(format!("{value}").as_bytes()) } else { None };
        Float { value, decimal }
    }
}

/// Parses a float as Redis's INCRBYFLOAT does: no spaces, no NaN, no number past the largest
/// long double (strtold's ERANGE). A spelled-out infinity parses and is then refused by the
/// addition, and so does a number between f64's largest and long double's, which Redis holds
/// and cstore cannot: it becomes an infinity.
pub fn parse_float(text: &[u8]) -> Option<Float> {
    let text = std::str::from_utf8(text).ok()?;
    let value: f64 = text.parse().ok()?;
    let out_of_range = value.is_infinite() && !spells_infinity(text) && beyond_long_double(text);
    if value.is_nan() || out_of_range {
        return None;
    }
    Some(Float { value, decimal: parse_decimal(text.as_bytes()) })
}

/// `inf` or `infinity` in any case, signed or not.
fn spells_infinity(text: &str) -> bool {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity")
}

/// Whether a decimal number too large for an f64 is also larger than the largest x87 long
/// double, about 1.18973e4932: scaled down by 10^4932, it fits an f64 to compare.
fn beyond_long_double(text: &str) -> bool {
    const LARGEST_EXPONENT: i64 = 4932;
    const LARGEST_SCALED: f64 = 1.189_731_495_357_231_8;
    let (mantissa, exponent) = text.split_once(['e', 'E']).unwrap_or((text, "0"));
    // An exponent too long for an i64 is past any range (a negative one would not overflow).
    let exponent = exponent.parse::<i64>().unwrap_or(i64::MAX).saturating_sub(LARGEST_EXPONENT);
    let scaled: f64 = format!("{mantissa}e{exponent}").parse().unwrap_or(f64::INFINITY);
    scaled.abs() > LARGEST_SCALED
}

/// `[+-]digits[.digits][(e|E)[+-]digits]` as an exact decimal, if it fits.
fn parse_decimal(text: &[u8]) -> Option<Decimal> {
    let (negative, rest) = match text.split_first()? {
        (b'-', rest) => (true, rest),
        (b'+', rest) => (false, rest),
        _ => (false, text),
    };
    let (mantissa, exponent) = match rest.iter().position(|&b| b == b'e' || b == b'E') {
        Some(at) => (&rest[..at], parse_exponent(&rest[at + 1..])?),
        None => (rest, 0),
    };
    let (integer, fraction) = match mantissa.iter().position(|&b| b == b'.') {
        Some(at) => (&mantissa[..at], &mantissa[at + 1..]),
        None => (mantissa, &[][..]),
    };
    if integer.is_empty() && fraction.is_empty() {
        return None;
    }
    let mut coefficient: i128 = 0;
    for &digit in integer.iter().chain(fraction) {
        if !digit.is_ascii_digit() {
            return None;
        }
        coefficient = coefficient.checked_mul(10)?.checked_add(i128::from(digit - b'0'))?;
    }
    let mut scale = i64::try_from(fraction.len()).ok()? - exponent;
    if scale < 0 {
        coefficient = coefficient.checked_mul(10i128.checked_pow(u32::try_from(-scale).ok()?)?)?;
        scale = 0;
    }
    let scale = u32::try_from(scale).ok().filter(|&s| s <= MAX_SCALE)?;
    Some(Decimal { coefficient: if negative { -coefficient } else { coefficient }, scale })
}

fn parse_exponent(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first()? {
        (b'-', rest) => (true, rest),
        (b'+', rest) => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 4 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let magnitude: i64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

impl Decimal {
    fn checked_add(self, other: Decimal) -> Option<Decimal> {
        let scale = self.scale.max(other.scale);
        let widen = |d: Decimal| d.coefficient.checked_mul(10i128.checked_pow(scale - d.scale)?);
        Some(Decimal { coefficient: widen(self)?.checked_add(widen(other)?)?, scale })
    }

    /// `%.17Lf` without trailing zeros: rounds half to even at 17 decimals.
    fn print(self) -> String {
        let (mut coefficient, mut scale) = (self.coefficient, self.scale);
        if scale > PRINTED_DECIMALS {
            let divisor = 10i128.pow(scale - PRINTED_DECIMALS);
            let (quotient, remainder) = (coefficient / divisor, coefficient % divisor);
            let twice = remainder.abs() * 2;
            let round_away = twice > divisor || (twice == divisor && quotient % 2 != 0);
            coefficient = quotient + if round_away { coefficient.signum() } else { 0 };
            scale = PRINTED_DECIMALS;
        }
        let magnitude = coefficient.unsigned_abs();
        let unit = 10u128.pow(scale);
        let mut text = format!("{}", magnitude / unit);
        let fraction = format!("{:0width$}", magnitude % unit, width = scale as usize);
        let fraction = fraction.trim_end_matches('0');
        if !fraction.is_empty() {
            text.push('.');
            text.push_str(fraction);
        }
        // Redis prints a negative zero as "0".
        if coefficient < 0 { format!("-{text}") } else { text }
    }
}

/// `%.17Lf` of a double without trailing zeros, for sums outside exact decimal range.
fn print_double(value: f64) -> String {
    let text = format!("{value:.17}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" { "0".to_owned() } else { text.to_owned() }
}

/// INCRBYFLOAT's sum of the stored number and the increment, printed as Redis prints it.
pub(crate) fn add(current: Float, increment: Float) -> Result<CompactBytes, StoreError> {
    let sum = current.value + increment.value;
    if !sum.is_finite() {
        return Err(StoreError::NotFinite);
    }
    let exact = current.decimal.zip(increment.decimal).and_then(|(a, b)| a.checked_add(b));
    Ok(CompactBytes::from(match exact {
        Some(decimal) => decimal.print(),
        None => print_double(sum),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(a: &str, b: &str) -> String {
        let (a, b) = (parse_float(a.as_bytes()).unwrap(), parse_float(b.as_bytes()).unwrap());
        String::from_utf8(add(a, b).unwrap().to_vec()).unwrap()
    }

    #[test]
    fn sums_print_as_redis_prints_them() {
        // Each expected answer was given by redis-server 7.0.15.
        assert_eq!(sum("0.1", "0.2"), "0.3");
        assert_eq!(sum("10.5", "0.1"), "10.6");
        assert_eq!(sum("-0", "-0.0"), "0");
        assert_eq!(sum("0", "1e-20"), "0");
        assert_eq!(sum("9223372036854775807", "0.5"), "9223372036854775807.5");
        assert_eq!(sum("0", "1e20"), "100000000000000000000");
        assert_eq!(sum("0", "3.0000000000000004"), "3.0000000000000004");
        assert_eq!(sum("0", "1.5e-10"), "0.00000000015");
        assert_eq!(sum("5", "-5"), "0");
        assert_eq!(sum("1", "-1.25"), "-0.25");
    }

    #[test]
    fn rounding_at_the_seventeenth_decimal_is_half_even() {
        assert_eq!(sum("0", "0.000000000000000005"), "0");
        assert_eq!(sum("0", "0.000000000000000015"), "0.00000000000000002");
        assert_eq!(sum("0", "0.0000000000000000151"), "0.00000000000000002");
        assert_eq!(sum("0", "-0.000000000000000015"), "-0.00000000000000002");
    }

    #[test]
    fn numbers_beyond_exact_range_use_doubles() {
        assert_eq!(sum("1e300", "0").len(), 301);
        assert_eq!(sum("0", "0.1234567890123456789012345678901234567890"), "0.12345678901234568");
        assert!(add(parse_float(b"1e308").unwrap(), parse_float(b"1e308").unwrap()).is_err());
    }

    #[test]
    fn parsing_refuses_what_redis_refuses() {
        // Past long double's range, as strtold's ERANGE.
        let too_large = ["1e4933", "-1e39223372036854775807", "0.012e4935", "1.19e4932", "12000e4929"];
        for bad in ["", " 1", "1 ", "nan", "abc", "1e", "--1"].into_iter().chain(too_large) {
            assert!(parse_float(bad.as_bytes()).is_none(), "{bad:?}");
        }
        // Within long double's range but past f64's: an infinity, refused by the addition.
        for large in ["1e400", "-3.51e3007", "1.18e4932", "0.00118e4935"] {
            assert!(parse_float(large.as_bytes()).is_some_and(|float| float.value().is_infinite()), "{large:?}");
        }
        assert_eq!(parse_float(b"inf").map(Float::value), Some(f64::INFINITY));
        assert_eq!(parse_float(b"-Infinity").map(Float::value), Some(f64::NEG_INFINITY));
        assert_eq!(parse_float(b"+INF").map(Float::value), Some(f64::INFINITY));
        assert_eq!(parse_float(b"+1.5").map(Float::value), Some(1.5));
    }

    #[test]
    fn doubles_convert_to_their_shortest_decimal() {
        assert_eq!(Float::from(0.1).decimal, parse_decimal(b"0.1"));
        assert_eq!(Float::from(f64::INFINITY).decimal, None);
    }
}
