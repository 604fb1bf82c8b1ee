//! Seeded initialisation through the layers.

mod common;

use brainrecon_nn::init::{init_parameters, init_parameters_with, ParamInit};
use brainrecon_nn::layers::{GroupNorm, Linear};
use candle_core::{DType, Device};
use common::{bits, values};

#[test]
fn init_values_do_not_depend_on_build_order_or_prefix_neighbours() {
    // The same tensor name gets the same values whatever else the module holds.
    let dev = Device::Cpu;
    let build_one = |vb: candle_nn::VarBuilder<'static>| Linear::new(vb.pp("a"), 8, 4, true);
    let build_two = |vb: candle_nn::VarBuilder<'static>| {
        let _b = Linear::new(vb.pp("b"), 3, 3, true)?;
        Linear::new(vb.pp("a"), 8, 4, true)
    };
    let (l1, p1) = init_parameters(build_one, 3, DType::F32, &dev).unwrap();
    let (l2, p2) = init_parameters(build_two, 3, DType::F32, &dev).unwrap();
    assert_eq!(p1.len(), 2);
    assert_eq!(p2.len(), 4);
    assert_eq!(bits(&l1.weight), bits(&l2.weight));
    // f64 parameters hold the same draws before rounding.
    let (l3, _) = init_parameters(build_one, 3, DType::F64, &dev).unwrap();
    assert_eq!(l3.weight.dtype(), DType::F64);
    assert_eq!(bits(&l3.weight), bits(&l1.weight));
    // A custom rule for chosen tensors.
    let (l4, _) = init_parameters_with(build_one, 3, DType::F32, &dev, |name, _, rule| {
        if name == "a.weight" {
            ParamInit::Constant(0.0)
        } else {
            rule
        }
    })
    .unwrap();
    assert!(values(&l4.weight).iter().all(|&x| x == 0.0));
    assert_eq!(
        bits(l4.bias.as_ref().unwrap()),
        bits(l1.bias.as_ref().unwrap())
    );
    // Integer dtypes are refused.
    assert!(init_parameters(build_one, 3, DType::U32, &dev).is_err());
    // A module error during the build comes back as is.
    let err =
        init_parameters(|vb| GroupNorm::new(vb, 3, 8, 1e-5), 0, DType::F32, &dev).unwrap_err();
    assert!(err.to_string().contains("not divisible"), "{err}");
}
