//! Kubernetes quantities (`512Mi`, `2Gi`, `1.5G`, `1e9`) as whole bytes, for the store's
//! `maxMemory`, which the config file takes as a byte count.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Why a quantity cannot be a byte count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("{0:?} is not a quantity: expected a number with an optional suffix such as Ki, Mi, Gi, k, M, G or e6")]
    Malformed(String),
    #[error("{0:?} is negative: a byte count cannot be")]
    Negative(String),
    #[error("{0:?} is too large: at most {max} bytes", max = u64::MAX)]
    TooLarge(String),
}

/// The number of bytes a quantity stands for, rounded up to a whole byte as Kubernetes rounds
/// quantities up (`1.5` is 2 bytes, `100m` is 1 byte).
pub fn quantity_to_bytes(quantity: &Quantity) -> Result<u64, QuantityError> {
    let text = quantity.0.as_str();
    let (negative, magnitude) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    match magnitude_in_bytes(magnitude) {
        Err(Unusable::Malformed) => Err(QuantityError::Malformed(text.to_owned())),
        Ok(0) => Ok(0),
        Ok(_) | Err(Unusable::TooLarge) if negative => Err(QuantityError::Negative(text.to_owned())),
        Ok(bytes) => u64::try_from(bytes).map_err(|_| QuantityError::TooLarge(text.to_owned())),
        Err(Unusable::TooLarge) => Err(QuantityError::TooLarge(text.to_owned())),
    }
}

enum Unusable {
    Malformed,
    TooLarge,
}

/// An unsigned quantity in bytes, computed exactly: its digits times the suffix's fraction,
/// divided by the power of ten its decimal point stands for, rounded up.
fn magnitude_in_bytes(text: &str) -> Result<u128, Unusable> {
    let number_end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(Unusable::Malformed);
    }
    let scale = Scale::parse(suffix).ok_or(Unusable::Malformed)?;
    let digits = format!("{whole}{fraction}");
    let significant = digits.trim_start_matches('0');
    let value: u128 = if significant.is_empty() { 0 } else { significant.parse().map_err(|_| Unusable::TooLarge)? };
    // More decimals than u128 holds is more precision than any quantity has.
    let point =
        u32::try_from(fraction.len()).ok().and_then(|len| 10u128.checked_pow(len)).ok_or(Unusable::Malformed)?;
    let numerator = value.checked_mul(scale.numerator).ok_or(Unusable::TooLarge)?;
    let denominator = point.checked_mul(scale.denominator).ok_or(Unusable::Malformed)?;
    Ok(numerator.div_ceil(denominator))
}

/// A suffix's multiplier as a fraction, so that `m` (milli) and negative exponents stay exact.
struct Scale {
    numerator: u128,
    denominator: u128,
}

impl Scale {
    fn parse(suffix: &str) -> Option<Scale> {
        let multiply = |numerator| Some(Scale { numerator, denominator: 1 });
        match suffix {
            "" => multiply(1),
            "m" => Some(Scale { numerator: 1, denominator: 1000 }),
            "k" => multiply(10u128.pow(3)),
            "M" => multiply(10u128.pow(6)),
            "G" => multiply(10u128.pow(9)),
            "T" => multiply(10u128.pow(12)),
            "P" => multiply(10u128.pow(15)),
            "E" => multiply(10u128.pow(18)),
            "Ki" => multiply(1 << 10),
            "Mi" => multiply(1 << 20),
            "Gi" => multiply(1 << 30),
            "Ti" => multiply(1 << 40),
            "Pi" => multiply(1 << 50),
            "Ei" => multiply(1 << 60),
            exponent => {
                let power = exponent.strip_prefix(['e', 'E'])?;
                let (negative, digits) = match power.strip_prefix('-') {
                    Some(digits) => (true, digits),
                    None => (false, power.strip_prefix('+').unwrap_or(power)),
                };
                if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
                    return None;
                }
                // Quantities are capped at 2^63 - 1, so an exponent past 38 fits nothing.
                let factor = 10u128.checked_pow(digits.parse::<u32>().ok().filter(|&e| e <= 38)?)?;
                Some(if negative {
                    Scale { numerator: 1, denominator: factor }
                } else {
                    Scale { numerator: factor, denominator: 1 }
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(text: &str) -> Result<u64, QuantityError> {
        quantity_to_bytes(&Quantity(text.to_owned()))
    }

    #[test]
    fn binary_decimal_and_exponent_suffixes() {
        for (text, expected) in [
            ("0", 0),
            ("4096", 4096),
            ("512Mi", 512 << 20),
            ("2Gi", 2 << 30),
            ("1.5Gi", 3 << 29),
            ("1Ki", 1024),
            ("1Ei", 1 << 60),
            ("1k", 1000),
            ("128M", 128_000_000),
            ("1G", 1_000_000_000),
            ("2T", 2_000_000_000_000),
            ("1e9", 1_000_000_000),
            ("1E3", 1000),
            ("5e+2", 500),
            ("+1Mi", 1 << 20),
            (".5Ki", 512),
            ("2.", 2),
            ("0Gi", 0),
        ] {
            assert_eq!(bytes(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn fractions_of_a_byte_round_up() {
        assert_eq!(bytes("1.5"), Ok(2));
        assert_eq!(bytes("100m"), Ok(1));
        assert_eq!(bytes("1500m"), Ok(2));
        assert_eq!(bytes("1e-3"), Ok(1));
        assert_eq!(bytes("0.0"), Ok(0));
        assert_eq!(bytes("-0"), Ok(0));
    }

    #[test]
    fn malformed_negative_and_huge_quantities_are_refused() {
        for text in ["", "Mi", "1.2.3", "12XB", "1 Gi", "1mi", "e3", "1e", "1e-", "0x10", "."] {
            assert_eq!(bytes(text), Err(QuantityError::Malformed(text.to_owned())), "{text}");
        }
        assert_eq!(bytes("-1Gi"), Err(QuantityError::Negative("-1Gi".to_owned())));
        for text in ["16Ei", "99999999999999999999", "1e39"] {
            assert!(matches!(bytes(text), Err(QuantityError::TooLarge(_) | QuantityError::Malformed(_))), "{text}");
        }
        assert_eq!(bytes("16Ei"), Err(QuantityError::TooLarge("16Ei".to_owned())));
    }
}
