//! Bounds on the size-like fields of model configs (`config.json` files written by anyone).
//!
//! Each check returns a message `"<field>: expected <...>, found <...>"`; callers prefix the
//! config file. The bounds are far above any released model yet low enough that no single field
//! can overflow an index computation or drive a multi-GB buffer before weights are checked.

/// Channels, hidden sizes, intermediate sizes, embedding widths.
pub const MAX_CHANNELS: usize = 65_536;
/// Feed-forward widths (often 4-8x the hidden size).
pub const MAX_FFN: usize = 1 << 19;
/// Layers, blocks, attention heads, groups.
pub const MAX_LAYERS: usize = 1024;
/// Token vocabularies.
pub const MAX_VOCAB: usize = 10_000_000;
/// Sequence positions (positional tables are allocated from it).
pub const MAX_POSITIONS: usize = 1_000_000;
/// Image side, in pixels or latent cells.
pub const MAX_IMAGE_SIDE: usize = 16_384;
/// Convolution kernels, strides, patches.
pub const MAX_KERNEL: usize = 64;
/// Convolution padding.
pub const MAX_PADDING: usize = 16;

/// `value` in `[min, max]`.
pub fn in_range(field: &str, value: usize, min: usize, max: usize) -> Result<(), String> {
    if !(min..=max).contains(&value) {
        return Err(format!(
            "{field}: expected an integer in {min}..={max}, found {value}"
        ));
    }
    Ok(())
}

/// `value` in `[1, max]`.
pub fn positive(field: &str, value: usize, max: usize) -> Result<(), String> {
    in_range(field, value, 1, max)
}

/// Each of `values` in `[1, max]`; messages name `field[i]`.
pub fn all_positive(field: &str, values: &[usize], max: usize) -> Result<(), String> {
    for (i, v) in values.iter().enumerate() {
        positive(&format!("{field}[{i}]"), *v, max)?;
    }
    Ok(())
}

/// A list of `min..=max` entries (block lists).
pub fn list_len(field: &str, len: usize, min: usize, max: usize) -> Result<(), String> {
    if !(min..=max).contains(&len) {
        return Err(format!(
            "{field}: expected {min} to {max} entries, found {len}"
        ));
    }
    Ok(())
}

/// A finite number in `[min, max]`.
pub fn finite_in(field: &str, value: f64, min: f64, max: f64) -> Result<(), String> {
    if !value.is_finite() || !(min..=max).contains(&value) {
        return Err(format!(
            "{field}: expected a finite number in [{min}, {max}], found {value}"
        ));
    }
    Ok(())
}

/// A normalisation epsilon: finite and in `(0, 1]`.
pub fn epsilon(field: &str, value: f64) -> Result<(), String> {
    if !value.is_finite() || value <= 0.0 || value > 1.0 {
        return Err(format!(
            "{field}: expected a finite number in (0, 1], found {value}"
        ));
    }
    Ok(())
}

/// `groups` in `[1, MAX_LAYERS]` and dividing each of `channels` (GroupNorm).
#[allow(clippy::manual_is_multiple_of)] // `is_multiple_of` needs Rust 1.87
pub fn groups_divide(field: &str, groups: usize, channels: &[usize]) -> Result<(), String> {
    positive(field, groups, MAX_LAYERS)?;
    for c in channels {
        if c % groups != 0 {
            return Err(format!(
                "{field}: expected a divisor of every channel count {channels:?}, found {groups}"
            ));
        }
    }
    Ok(())
}

/// `heads` in `[1, MAX_LAYERS]` and dividing `width`.
#[allow(clippy::manual_is_multiple_of)]
pub fn heads_divide(field: &str, heads: usize, width: usize) -> Result<(), String> {
    positive(field, heads, MAX_LAYERS)?;
    if width % heads != 0 {
        return Err(format!(
            "{field}: expected a divisor of the width {width}, found {heads}"
        ));
    }
    Ok(())
}

/// The trunk of every BERT/CLIP-style encoder, under transformers' names: `hidden_size`,
/// `num_attention_heads` dividing it, `intermediate_size` and `num_hidden_layers`.
pub fn encoder_trunk(
    hidden_size: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
) -> Result<(), String> {
    positive("hidden_size", hidden_size, MAX_CHANNELS)?;
    heads_divide("num_attention_heads", num_attention_heads, hidden_size)?;
    positive("intermediate_size", intermediate_size, MAX_FFN)?;
    positive("num_hidden_layers", num_hidden_layers, MAX_LAYERS)
}

/// A square `image_size` cut into `patch_size` patches (transformers floors): at most 16384
/// patches, as the attention matrix is patches² floats a head.
pub fn square_patches(image_size: usize, patch_size: usize) -> Result<(), String> {
    positive("image_size", image_size, MAX_IMAGE_SIDE)?;
    positive("patch_size", patch_size, image_size)?;
    let patches = (image_size / patch_size).pow(2);
    if patches > 16_384 {
        return Err(format!(
            "patch_size: expected at most 16384 patches of image_size {image_size}, found \
             {patches} (patch_size {patch_size})"
        ));
    }
    Ok(())
}

/// Test support: every numeric field of a real config replaced by hostile values.
#[doc(hidden)]
pub mod hostile {
    use serde_json::{json, Value};
    use std::panic::{catch_unwind, AssertUnwindSafe};

    /// JSON pointers of every number in `value` (array entries included).
    pub fn number_pointers(value: &Value) -> Vec<String> {
        fn walk(v: &Value, at: String, out: &mut Vec<String>) {
            match v {
                Value::Number(_) => out.push(at),
                Value::Object(m) => m
                    .iter()
                    .for_each(|(k, v)| walk(v, format!("{at}/{k}"), out)),
                Value::Array(a) => a
                    .iter()
                    .enumerate()
                    .for_each(|(i, v)| walk(v, format!("{at}/{i}"), out)),
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(value, String::new(), &mut out);
        out
    }

    /// The object key a pointer ends in (array indices skipped): what messages must name.
    pub fn field_name(pointer: &str) -> &str {
        pointer
            .rsplit('/')
            .find(|s| s.parse::<usize>().is_err())
            .unwrap_or("")
    }

    /// Loads `original` with each number replaced by 0, -1, 2^31, 2^63, 1e300, a string and a
    /// list of 9 (longer than any block list). Returns the problems: a panic anywhere; for the huge values and the wrong types,
    /// an `Ok` or an error that does not name the field (unless the field is in `ignored`).
    pub fn problems(
        original: &Value,
        ignored: &[&str],
        load: &dyn Fn(&Value) -> Result<(), String>,
    ) -> Vec<String> {
        let huge: [Value; 5] = [
            json!(2147483648u64),
            json!(9223372036854775808u64),
            json!(1e300),
            json!("x"),
            json!([1, 2, 3, 4, 5, 6, 7, 8, 9]),
        ];
        let mut out = Vec::new();
        for pointer in number_pointers(original) {
            let name = field_name(&pointer);
            let cases = [json!(0), json!(-1)].into_iter().map(|v| (v, false));
            for (bad, must_fail) in cases.chain(huge.iter().cloned().map(|v| (v, true))) {
                let mut mutated = original.clone();
                *mutated
                    .pointer_mut(&pointer)
                    .expect("pointer from the walk") = bad.clone();
                let result = catch_unwind(AssertUnwindSafe(|| load(&mutated)));
                match result {
                    Err(_) => out.push(format!("{pointer} = {bad}: panicked")),
                    Ok(Ok(())) if must_fail && !ignored.contains(&name) => {
                        out.push(format!("{pointer} = {bad}: accepted"))
                    }
                    Ok(Err(e)) if must_fail && !e.contains(name) => out.push(format!(
                        "{pointer} = {bad}: error does not name {name}: {e}"
                    )),
                    _ => {}
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_field_expected_and_found() {
        let e = positive("norm_num_groups", 0, 32).unwrap_err();
        assert_eq!(e, "norm_num_groups: expected an integer in 1..=32, found 0");
        assert!(in_range("x", 1 << 31, 0, 16)
            .unwrap_err()
            .contains("2147483648"));
        assert!(finite_in("s", f64::NAN, 0.0, 1.0)
            .unwrap_err()
            .starts_with("s: expected"));
        assert!(epsilon("eps", -1.0).is_err() && epsilon("eps", 1e-6).is_ok());
        assert!(groups_divide("g", 3, &[32, 64])
            .unwrap_err()
            .contains("found 3"));
        assert!(heads_divide("h", 0, 64).is_err() && heads_divide("h", 8, 64).is_ok());
        assert!(all_positive("c", &[4, 0], 8)
            .unwrap_err()
            .starts_with("c[1]:"));
        assert!(list_len("l", 0, 1, 8).is_err());
    }
}
