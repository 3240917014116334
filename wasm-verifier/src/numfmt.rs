//! Number formatting: ECMAScript's `Number.prototype.toString` (RFC 8785 §3.2.2.3) and
//! CPython's `float.__repr__`. Both start from the shortest digit string that reads
//! back as the same double, which Rust's `{:e}` formatting gives.

fn parse_exp(text: &str) -> (bool, String, i32) {
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match text.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (text, 0),
    };
    let mut digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    (negative, digits, exponent + 1)
}

/// `(negative, digits, n)` with value = 0.d1d2…dk × 10^n: the fewest digits that read
/// back as `f`, and of those the closest to `f` (ties to even), as ECMAScript requires
/// and CPython's dtoa does. Rust's shortest form gives the digit count; the correctly
/// rounded value at that precision is the closest, and is used whenever it reads back.
fn shortest(f: f64) -> (bool, String, i32) {
    let short = parse_exp(&format!("{:e}", f));
    let k = short.1.len();
    let rounded = format!("{:.*e}", k - 1, f);
    if rounded.parse::<f64>() == Ok(f) {
        let closest = parse_exp(&rounded);
        if closest.1.len() == k {
            return closest;
        }
    }
    short
}

/// `0.` then `-n` zeros then the digits: 0.d1d2…dk × 10^n for n <= 0, in both languages.
fn push_below_one(out: &mut String, digits: &str, n: i32) {
    out.push_str("0.");
    for _ in 0..(-n) {
        out.push('0');
    }
    out.push_str(digits);
}

/// `d1[.d2…dk]e` and the exponent's sign: the start of both languages' exponent form.
fn push_mantissa_e_sign(out: &mut String, digits: &str, e: i32) {
    out.push_str(&digits[..1]);
    if digits.len() > 1 {
        out.push('.');
        out.push_str(&digits[1..]);
    }
    out.push('e');
    out.push(if e < 0 { '-' } else { '+' });
}

/// ECMAScript Number::toString (finite values only; -0 prints as 0).
pub fn es_number(f: f64) -> String {
    if f == 0.0 {
        return "0".to_string();
    }
    let (negative, digits, n) = shortest(f);
    let k = digits.len() as i32;
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if k <= n && n <= 21 {
        out.push_str(&digits);
        for _ in 0..(n - k) {
            out.push('0');
        }
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        push_below_one(&mut out, &digits, n);
    } else {
        let e = n - 1;
        push_mantissa_e_sign(&mut out, &digits, e);
        out.push_str(&e.abs().to_string());
    }
    out
}

/// CPython `repr(float)` ('r' format, short repr style); finite values only.
pub fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".to_string() } else { "-inf".to_string() };
    }
    let (negative, digits, n) = if f == 0.0 {
        (f.is_sign_negative(), "0".to_string(), 1)
    } else {
        shortest(f)
    };
    let k = digits.len() as i32;
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if n <= -4 || n > 16 {
        let e = n - 1;
        push_mantissa_e_sign(&mut out, &digits, e);
        let magnitude = e.abs();
        if magnitude < 10 {
            out.push('0');
        }
        out.push_str(&magnitude.to_string());
    } else if n <= 0 {
        push_below_one(&mut out, &digits, n);
    } else if n >= k {
        out.push_str(&digits);
        for _ in 0..(n - k) {
            out.push('0');
        }
        out.push_str(".0");
    } else {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecmascript() {
        assert_eq!(es_number(1e21), "1e+21");
        assert_eq!(es_number(1e20), "100000000000000000000");
        assert_eq!(es_number(1e-7), "1e-7");
        assert_eq!(es_number(1e-6), "0.000001");
        assert_eq!(es_number(-0.0), "0");
        assert_eq!(es_number(1.5), "1.5");
        assert_eq!(es_number(123.0), "123");
        assert_eq!(es_number(5e-324), "5e-324");
        assert_eq!(es_number(1.7976931348623157e308), "1.7976931348623157e+308");
        assert_eq!(es_number(1424953923781206.25), "1424953923781206.2");
    }

    #[test]
    fn python_repr() {
        assert_eq!(py_float_repr(1.0), "1.0");
        assert_eq!(py_float_repr(-0.0), "-0.0");
        assert_eq!(py_float_repr(1e16), "1e+16");
        assert_eq!(py_float_repr(1e15), "1000000000000000.0");
        assert_eq!(py_float_repr(0.0001), "0.0001");
        assert_eq!(py_float_repr(0.00001), "1e-05");
        assert_eq!(py_float_repr(1.5e300), "1.5e+300");
        assert_eq!(py_float_repr(0.1), "0.1");
        assert_eq!(py_float_repr(123.456), "123.456");
    }
}
