//! Value checks on the device: reported at the thread's next readback or sync, the earliest
//! failing one named, then cleared.

use super::common::*;
use cinder_device::Error;

#[test]
fn value_checks_report_the_first_failure_at_the_next_readback() {
    let nan = f32::NAN;
    let p = tensor(&[0.0, 0.5, 1.0], &[3]);
    p.check_range("bce", "probabilities in [0, 1]", 0.0, 1.0)
        .unwrap();
    assert_eq!(
        read(&p),
        vec![0.0, 0.5, 1.0],
        "a passing check reports nothing"
    );
    let bad = tensor(&[0.2, 1.5, -0.1], &[3]);
    let worse = tensor(&[nan], &[1]);
    p.check_range("bce", "probabilities in [0, 1]", 0.0, 1.0)
        .unwrap();
    bad.check_range("bce", "probabilities in [0, 1]", 0.0, 1.0)
        .unwrap();
    worse.check_finite("log").unwrap();
    match bad.to_vec::<f32>() {
        Err(Error::OutOfDomain { op, expected }) => {
            assert_eq!(op, "bce");
            assert_eq!(expected, "probabilities in [0, 1]");
        }
        other => panic!("expected OutOfDomain, got {other:?}"),
    }
    assert_eq!(read(&bad), vec![0.2, 1.5, -0.1], "cleared after the report");
    // NaN never passes a range; check_finite names its op
    worse
        .check_range("gaussian_nll", "var >= 0", 0.0, f32::INFINITY)
        .unwrap();
    assert!(matches!(
        dev().sync(),
        Err(Error::OutOfDomain {
            op: "gaussian_nll",
            ..
        })
    ));
    let inf = tensor(&[1.0, f32::INFINITY], &[2]);
    inf.check_finite("exp (in the backward of mul)").unwrap();
    match dev().sync() {
        Err(Error::NonFinite { op }) => assert_eq!(op, "exp (in the backward of mul)"),
        other => panic!("expected NonFinite, got {other:?}"),
    }
    assert!(dev().sync().is_ok());
    assert!(
        p.check_range("x", "", 1.0, 0.0).is_err(),
        "bounds out of order"
    );
}
