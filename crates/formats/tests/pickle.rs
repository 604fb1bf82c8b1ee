//! The restricted pickle reader against files written by Python's pickle and NumPy's np.save
//! (tools/fixtures/pickle_fixtures.py): NumPy 2's np.save (protocol 4, numpy._core) and NumPy
//! 1.x's (protocol 3, GLOBAL numpy.core, as THINGS-EEG2 ships), protocols 2 and 5, special
//! floats, big-endian, Fortran order, float16, scalars, shared references; and the files it
//! must refuse: a global that would run code, a pickle that contains itself.

use brainrecon_formats::npy::{read_pickled, read_pickled_item};
use brainrecon_formats::pickle::{self, ArrayData, Dtype, Value};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pickle")
        .join(name)
}

fn expected() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).unwrap()).unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| match x {
            serde_json::Value::String(s) => match s.as_str() {
                "nan" => f64::NAN,
                "inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                other => panic!("{other}"),
            },
            n => n.as_f64().unwrap(),
        })
        .collect()
}

fn array<'a>(v: &'a Value, key: &str) -> &'a pickle::NdArray {
    match v.get(key) {
        Some(Value::Array(a)) => a,
        other => panic!("{key}: {other:?}"),
    }
}

fn same_bits(got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!(
            g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
            "{g} vs {w}"
        );
    }
}

fn check_dict(path: &Path) {
    let want = expected();
    let dict = read_pickled_item(path).unwrap();
    let data = array(&dict, "preprocessed_eeg_data");
    assert_eq!(data.dtype, Dtype::Float { bytes: 8 });
    let shape: Vec<usize> = want["preprocessed_eeg_data"]["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(data.shape, shape);
    same_bits(
        &data.to_f64().unwrap(),
        &floats(&want["preprocessed_eeg_data"]["values"]),
    );
    same_bits(
        &array(&dict, "times").to_f64().unwrap(),
        &floats(&want["times"]),
    );
    let be = array(&dict, "f32_be");
    assert!(be.big_endian);
    same_bits(&be.to_f64().unwrap(), &floats(&want["f32_be"]));
    let fortran = array(&dict, "fortran");
    assert!(fortran.fortran_order);
    same_bits(
        &fortran.to_f64().unwrap(),
        &floats(&want["fortran_c_order"]),
    );
    same_bits(
        &array(&dict, "half").to_f64().unwrap(),
        &floats(&want["half"]),
    );
    assert_eq!(
        array(&dict, "bytes_u8").to_f64().unwrap(),
        vec![0.0, 7.0, 255.0]
    );
    assert_eq!(array(&dict, "mask").to_f64().unwrap(), vec![1.0, 0.0, 1.0]);
    assert_eq!(
        array(&dict, "ch_types").to_strings().unwrap(),
        vec!["eeg", "eeg", "stim"]
    );
    let names = |v: &Value| -> Vec<String> {
        match v {
            Value::List(items) => items
                .iter()
                .map(|s| match s {
                    Value::Str(s) => s.to_string(),
                    other => panic!("{other:?}"),
                })
                .collect(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(names(dict.get("ch_names").unwrap()), vec!["Pz", "O1", "Oz"]);
    assert_eq!(dict.get("sfreq"), Some(&Value::Int(1000)));
    assert_eq!(dict.get("scale"), Some(&Value::Float(0.25)));
    assert_eq!(dict.get("flag"), Some(&Value::Bool(true)));
    assert_eq!(dict.get("nothing"), Some(&Value::None));
    assert_eq!(dict.get("raw"), Some(&Value::Bytes(vec![0, 1, 255].into())));
    assert_eq!(dict.get("unicode"), Some(&Value::Str("Ångström µV".into())));
    let nested = dict.get("nested").unwrap();
    assert_eq!(
        nested.get("a"),
        Some(&Value::tuple(vec![
            Value::Int(1),
            Value::Float(2.5),
            Value::Str("x".into())
        ]))
    );
    assert_eq!(
        nested.get("b"),
        Some(&Value::list(vec![
            Value::Bytes(b"raw".to_vec().into()),
            Value::Int(-7),
            Value::Int(1 << 40),
            Value::Int(-(1 << 40)),
        ]))
    );
    // One list referenced twice: both references see its items.
    let Some(Value::List(shared)) = dict.get("shared") else {
        panic!("shared")
    };
    assert_eq!(shared.len(), 2);
    assert_eq!(shared[0], shared[1]);
    assert_eq!(names(&shared[0]), vec!["Pz", "O1"]);
}

#[test]
fn numpy_2_and_numpy_1_dicts_read_as_written() {
    check_dict(&fixture("dict.npy"));
    check_dict(&fixture("dict_numpy1.npy"));
}

#[test]
fn plain_pickles_of_protocols_2_and_5_read_alike() {
    let want = expected();
    let read = |name: &str| pickle::read(&std::fs::read(fixture(name)).unwrap()).unwrap();
    let (two, five) = (read("protocol2.pkl"), read("protocol5.pkl"));
    assert_eq!(two, five);
    assert_eq!(
        two.get("n"),
        Some(&Value::Int(want["plain"]["n"].as_i64().unwrap()))
    );
    assert_eq!(
        two.get("big"),
        Some(&Value::Int(want["plain"]["big"].as_i64().unwrap()))
    );
    assert_eq!(two.get("x"), Some(&Value::Float(-1.5)));
    assert_eq!(
        two.get("nested"),
        Some(&Value::list(vec![
            Value::tuple(vec![Value::Int(1), Value::Str("a".into())]),
            Value::list(vec![Value::None, Value::Bool(true), Value::Bool(false)]),
        ]))
    );
}

#[test]
fn an_object_array_of_strings_reads_as_strings() {
    let Value::Array(a) = read_pickled(&fixture("list.npy")).unwrap() else {
        panic!("not an array")
    };
    assert!(matches!(a.data, ArrayData::Objects(_)));
    assert_eq!(
        a.to_strings().unwrap(),
        vec!["00001_aardvark", "00002_abacus"]
    );
}

#[test]
fn globals_that_would_run_code_are_refused_by_name() {
    let err = read_pickled_item(&fixture("evil.npy"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("evil.npy"), "{err}");
    assert!(err.contains("system") && err.contains("refused"), "{err}");
    let bytes = std::fs::read(fixture("evil_builtins.pkl")).unwrap();
    let err = pickle::read(&bytes).unwrap_err().to_string();
    assert!(
        err.contains("builtins.eval") && err.contains("refused"),
        "{err}"
    );
}

#[test]
fn a_pickle_that_contains_itself_is_refused() {
    let bytes = std::fs::read(fixture("recursive.pkl")).unwrap();
    let err = pickle::read(&bytes).unwrap_err().to_string();
    assert!(err.contains("nesting"), "{err}");
}

#[test]
fn truncated_and_oversized_lengths_are_errors_not_allocations() {
    let bytes = std::fs::read(fixture("protocol5.pkl")).unwrap();
    for cut in 0..bytes.len() {
        assert!(pickle::read(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    // BINBYTES8 claiming 2^63 bytes.
    let mut huge = vec![0x80, 4, 0x8e];
    huge.extend_from_slice(&(1u64 << 63).to_le_bytes());
    let err = pickle::read(&huge).unwrap_err().to_string();
    assert!(err.contains("byte 2"), "{err}");
}

#[test]
fn shared_references_nested_in_each_other_stay_shared() {
    // l0 = [None]; l(k+1) = [lk, lk] up to l40: 2^40 values if each reference were a copy.
    let mut bytes = vec![0x80, 4, b']', 0x94, b'N', b'a'];
    for key in 0..40u8 {
        // EMPTY_LIST, MEMOIZE (as key + 1), MARK, BINGET key twice, APPENDS
        bytes.extend_from_slice(&[b']', 0x94, b'(', b'h', key, b'h', key, b'e']);
    }
    bytes.push(b'.');
    // Never printed or compared whole: that would walk all 2^40 paths.
    let mut value = pickle::read_within(&bytes, 1 << 20).unwrap();
    for level in (0..40).rev() {
        let Value::List(items) = &value else {
            panic!("level {level}: {}", value.kind())
        };
        let (Value::List(a), Value::List(b)) = (&items[0], &items[1]) else {
            panic!("level {level}: not two lists")
        };
        assert!(std::sync::Arc::ptr_eq(a, b), "level {level}: a copy");
        value = items[0].clone();
    }
}

/// A protocol-4 pickle of a list holding `refs` references to one str of `len` bytes
/// (memo BINGET + APPEND repeated), the shape of a hostile `ch_names`.
fn shared_string_list(len: usize, refs: usize) -> Vec<u8> {
    let mut bytes = vec![0x80, 4, b']', b'q', 0, 0x8d];
    bytes.extend_from_slice(&(len as u64).to_le_bytes());
    bytes.extend(std::iter::repeat_n(b'a', len));
    bytes.extend_from_slice(&[b'q', 1, b'a']);
    for _ in 1..refs {
        bytes.extend_from_slice(&[b'h', 1, b'a']);
    }
    bytes.push(b'.');
    bytes
}

#[test]
fn a_value_referenced_many_times_is_shared_and_its_copies_are_sized_first() {
    // 40,000 references to one 1 MB str: 40 GB if each were a copy, 2 MB read here.
    let bytes = shared_string_list(1 << 20, 40_000);
    let value = pickle::read(&bytes).unwrap();
    let Value::List(items) = &value else {
        panic!("{}", value.kind())
    };
    assert_eq!(items.len(), 40_000);
    let (Value::Str(a), Value::Str(b)) = (&items[0], &items[39_999]) else {
        panic!("not strings")
    };
    assert!(std::sync::Arc::ptr_eq(a, b));
    // Flattening them into owned strings would pass the array limit: refused before it
    // allocates.
    let err = value.to_strings().unwrap_err();
    assert!(
        err.contains("40000 strings") && err.contains("BRAINRECON_MAX_ARRAY_BYTES"),
        "{err}"
    );
    assert_eq!(
        pickle::read(&shared_string_list(3, 5))
            .unwrap()
            .to_strings()
            .unwrap(),
        vec!["aaa"; 5]
    );
}

#[test]
fn what_the_reader_allocates_counts_against_its_budget() {
    let bytes = shared_string_list(1 << 20, 1_000);
    let err = pickle::read_within(&bytes, 1 << 19)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pickle byte 5") && err.contains("BRAINRECON_MAX_ARRAY_BYTES"),
        "{err}"
    );
    // The string fits; 1,000 slots of the list on top of it do not.
    let err = pickle::read_within(&bytes, (1 << 20) + 2_000)
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than"), "{err}");
    assert!(pickle::read_within(&bytes, 2 << 20).is_ok());

    // Through the file reader the error names the file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.npy");
    std::fs::write(&path, &bytes).unwrap();
    let err = brainrecon_formats::npy::read_pickled_within(&path, 1 << 19)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("shared.npy") && err.contains("pickle byte"),
        "{err}"
    );
}

#[test]
fn zero_width_dtypes_are_refused_in_pickles_and_npy_headers() {
    use brainrecon_formats::pickle::NdArray;
    use std::sync::Arc;
    // A pickled ndarray of 2^62 zero-width elements over no bytes: count × 0 = 0 matches.
    for dtype in [Dtype::Unicode { chars: 0 }, Dtype::ByteStr { bytes: 0 }] {
        let array = NdArray {
            shape: vec![1 << 62],
            dtype: dtype.clone(),
            big_endian: false,
            fortran_order: false,
            data: ArrayData::Raw(Arc::new(Vec::new())),
        };
        // One built by hand is refused too, not turned into 2^62 strings.
        assert!(array.to_strings().is_err(), "{dtype}");
        let bytes = pickle::write(&Value::Array(array.into())).unwrap();
        let err = pickle::read(&bytes).unwrap_err().to_string();
        assert!(err.contains("zero-width"), "{dtype}: {err}");
    }
    let header = |descr: &str, shape: &str| {
        let mut text =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        text.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(text.len() as u16).to_le_bytes());
        bytes.extend_from_slice(text.as_bytes());
        bytes
    };
    let path = Path::new("zero.npy");
    for descr in ["<U0", "|S0", "|V0"] {
        let err =
            brainrecon_formats::npy::parse_header(path, &header(descr, "(4611686018427387904,)"))
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("zero.npy") && err.contains("zero-width"),
            "{descr}: {err}"
        );
    }
    // 2^62 four-byte elements are 2^64 bytes: refused by count, not only by bytes.
    let err = brainrecon_formats::npy::parse_header(path, &header("<U1", "(4611686018427387904,)"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("addressed"), "{err}");
    assert!(brainrecon_formats::npy::parse_header(path, &header("<U3", "(2,)")).is_ok());
}

#[test]
fn written_pickles_read_back_as_written() {
    use brainrecon_formats::npy::write_pickled;
    use brainrecon_formats::pickle::NdArray;
    let values: Vec<f64> = vec![0.5, -0.0, f64::NAN, f64::INFINITY, 5e-324, -1e308];
    let dict = Value::dict(vec![
        (
            Value::Str("preprocessed_eeg_data".into()),
            Value::Array(NdArray::from_f64(vec![2, 1, 3], &values).into()),
        ),
        (
            Value::Str("ch_names".into()),
            Value::list(vec![Value::Str("Pz".into()), Value::Str("Oz".into())]),
        ),
        (Value::Str("sfreq".into()), Value::Int(1000)),
        (Value::Str("big".into()), Value::Int(-(1 << 40))),
        (Value::Str("x".into()), Value::Float(-2.5)),
        (
            Value::Str("t".into()),
            Value::tuple(vec![
                Value::None,
                Value::Bool(false),
                Value::Bytes(vec![0, 255].into()),
            ]),
        ),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("written.npy");
    write_pickled(&path, dict.clone()).unwrap();
    let back = read_pickled_item(&path).unwrap();
    let Some(Value::Array(a)) = back.get("preprocessed_eeg_data") else {
        panic!("{back:?}")
    };
    same_bits(&a.to_f64().unwrap(), &values);
    assert_eq!(a.shape, vec![2, 1, 3]);
    for key in ["ch_names", "sfreq", "big", "x", "t"] {
        assert_eq!(back.get(key), dict.get(key), "{key}");
    }
}
