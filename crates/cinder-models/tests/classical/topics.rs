//! pLSA and LDA against f64 CPU references (LDA: scikit-learn's batch formulas, its
//! per-document E-step loop included) on a tiny corpus.

use super::common::*;
use cinder_device::ops::elementwise::{digamma_f64, lgamma_f64};
use cinder_models::classical::{LatentDirichletAllocation, Plsa};

const N: usize = 7;
const V: usize = 9;
const K: usize = 3;

/// A tiny corpus: 7 documents over 9 words, one of them empty.
fn corpus() -> Vec<f32> {
    let mut r = rng(5);
    let mut x: Vec<f32> = uniform(&mut r, N * V, 0.0, 1.0)
        .iter()
        .map(|u| (u * u * 6.0).floor())
        .collect();
    for v in &mut x[3 * V..4 * V] {
        *v = 0.0; // an empty document
    }
    x
}

fn init(seed: u64) -> Vec<f32> {
    uniform(&mut rng(seed), K * V, 0.5, 1.5)
}

fn f64s(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

/// `[r, c]` row-major `a` times `[c, s]` `b`.
fn mm(a: &[f64], b: &[f64], r: usize, c: usize, s: usize) -> Vec<f64> {
    let mut o = vec![0.0; r * s];
    for i in 0..r {
        for j in 0..c {
            for l in 0..s {
                o[i * s + l] += a[i * c + j] * b[j * s + l];
            }
        }
    }
    o
}

fn normalize_rows(a: &mut [f64], c: usize) {
    for row in a.chunks_mut(c) {
        let s: f64 = row.iter().sum();
        if s > 0.0 {
            row.iter_mut().for_each(|v| *v /= s);
        }
    }
}

#[test]
fn plsa_em_matches_cpu_and_is_monotone() {
    let x = corpus();
    let phi0 = init(1);
    let mut plsa = Plsa::new(K)
        .with_max_iter(4)
        .with_tol(0.0)
        .with_init_components(&tensor(&phi0, &[K, V]));
    plsa.fit(&tensor(&x, &[N, V])).unwrap();
    // CPU EM
    let xd = f64s(&x);
    let mut phi = f64s(&phi0);
    normalize_rows(&mut phi, V);
    let mut theta = vec![1.0 / K as f64; N * K];
    let mut lls = Vec::new();
    for _ in 0..4 {
        let p = mm(&theta, &phi, N, K, V);
        lls.push(
            (0..N * V)
                .map(|i| xd[i] * p[i].max(1e-30).ln())
                .sum::<f64>(),
        );
        let r: Vec<f64> = (0..N * V).map(|i| xd[i] / p[i].max(1e-30)).collect();
        let mut t2 = theta.clone();
        let mut p2 = vec![0.0; K * V];
        for d in 0..N {
            let len: f64 = xd[d * V..(d + 1) * V].iter().sum();
            for z in 0..K {
                let s: f64 = (0..V).map(|w| r[d * V + w] * phi[z * V + w]).sum();
                if len > 0.0 {
                    t2[d * K + z] = theta[d * K + z] * s / len;
                }
                for w in 0..V {
                    p2[z * V + w] += theta[d * K + z] * r[d * V + w] * phi[z * V + w];
                }
            }
        }
        normalize_rows(&mut p2, V);
        theta = t2;
        phi = p2;
    }
    assert_close(&read(plsa.components().unwrap()), &phi, 1e-5, 1e-4);
    assert_close(&read(plsa.doc_topics().unwrap()), &theta, 1e-5, 1e-4);
    let got = plsa.log_likelihood_history();
    for (g, w) in got.iter().zip(&lls) {
        assert!((g - w).abs() <= 1e-4 * w.abs(), "{g} vs {w}");
    }
    assert!(
        got.windows(2).all(|w| w[1] >= w[0] - 1e-3 * w[0].abs()),
        "{got:?}"
    );
    // fold-in of the training documents gives a finite perplexity; the empty row stays uniform
    let t = read(plsa.transform(&tensor(&x, &[N, V])).unwrap());
    assert_close(&t[3 * K..4 * K], &[1.0 / 3.0; 3], 1e-6, 0.0);
    let ppl = plsa.perplexity(&tensor(&x, &[N, V])).unwrap();
    assert!(ppl.is_finite() && ppl > 1.0 && ppl < V as f64, "{ppl}");
}

/// sklearn's `_update_doc_distribution` for one document (f64), from `gamma` init.
fn doc_update(x: &[f64], eb: &[f64], alpha: f64, g0: Vec<f64>) -> (Vec<f64>, Vec<f64>) {
    let exp_dir = |g: &[f64]| -> Vec<f64> {
        let s: f64 = g.iter().sum();
        g.iter()
            .map(|&v| (digamma_f64(v) - digamma_f64(s)).exp())
            .collect()
    };
    let eps = f32::EPSILON as f64;
    let mut g = g0;
    let mut et = exp_dir(&g);
    for _ in 0..100 {
        let norm: Vec<f64> = (0..V)
            .map(|w| (0..K).map(|z| et[z] * eb[z * V + w]).sum::<f64>() + eps)
            .collect();
        let new: Vec<f64> = (0..K)
            .map(|z| et[z] * (0..V).map(|w| x[w] / norm[w] * eb[z * V + w]).sum::<f64>() + alpha)
            .collect();
        let change = new.iter().zip(&g).map(|(a, b)| (a - b).abs()).sum::<f64>() / K as f64;
        g = new;
        et = exp_dir(&g);
        if change < 1e-3 {
            break;
        }
    }
    (g, et)
}

fn cpu_e_step(x: &[f64], lambda: &[f64], alpha: f64) -> (Vec<f64>, Vec<f64>) {
    let mut elb = vec![0.0; K * V];
    for z in 0..K {
        let s: f64 = lambda[z * V..(z + 1) * V].iter().sum();
        for w in 0..V {
            elb[z * V + w] = digamma_f64(lambda[z * V + w]) - digamma_f64(s);
        }
    }
    let eb: Vec<f64> = elb.iter().map(|v| v.exp()).collect();
    let eps = f32::EPSILON as f64;
    let mut gamma = Vec::new();
    let mut ss = vec![0.0; K * V];
    for d in 0..N {
        let xd = &x[d * V..(d + 1) * V];
        let (g, et) = doc_update(xd, &eb, alpha, vec![1.0; K]);
        for w in 0..V {
            let norm = (0..K).map(|z| et[z] * eb[z * V + w]).sum::<f64>() + eps;
            for z in 0..K {
                ss[z * V + w] += et[z] * xd[w] / norm * eb[z * V + w];
            }
        }
        gamma.extend(g);
    }
    (gamma, ss)
}

/// sklearn's `_approx_bound` (sub_sampling false), f64.
fn cpu_bound(x: &[f64], gamma: &[f64], lambda: &[f64], alpha: f64, eta: f64) -> f64 {
    let elog = |a: &[f64], c: usize| -> Vec<f64> {
        a.chunks(c)
            .flat_map(|row| {
                let s: f64 = row.iter().sum();
                row.iter().map(move |&v| digamma_f64(v) - digamma_f64(s))
            })
            .collect()
    };
    let (et, eb) = (elog(gamma, K), elog(lambda, V));
    let mut score = 0.0;
    for d in 0..N {
        for w in 0..V {
            let lse = (0..K)
                .map(|z| (et[d * K + z] + eb[z * V + w]).exp())
                .sum::<f64>()
                .ln();
            score += x[d * V + w] * lse;
        }
    }
    let ll = |prior: f64, distr: &[f64], e: &[f64], c: usize, size: usize| -> f64 {
        let mut s = 0.0;
        for (i, &v) in distr.iter().enumerate() {
            s += (prior - v) * e[i] + lgamma_f64(v) - lgamma_f64(prior);
        }
        for row in distr.chunks(c) {
            s += lgamma_f64(prior * size as f64) - lgamma_f64(row.iter().sum());
        }
        s
    };
    score + ll(alpha, gamma, &et, K, K) + ll(eta, lambda, &eb, V, V)
}

#[test]
fn lda_batch_updates_and_bound_match_sklearn_formulas() {
    let x = corpus();
    let lam0 = init(2);
    let alpha = 1.0 / K as f64;
    let mut lda = LatentDirichletAllocation::new(K)
        .with_max_iter(3)
        .with_random_doc_init(false)
        .with_init_components(&tensor(&lam0, &[K, V]));
    let xt = tensor(&x, &[N, V]);
    lda.fit(&xt).unwrap();
    let xd = f64s(&x);
    let mut lambda = f64s(&lam0);
    for _ in 0..3 {
        let (_, ss) = cpu_e_step(&xd, &lambda, alpha);
        lambda = ss.iter().map(|s| s + alpha).collect();
    }
    assert_close(&read(lda.components().unwrap()), &lambda, 1e-4, 1e-4);
    let (gamma, _) = cpu_e_step(&xd, &lambda, alpha);
    assert_close(
        &read(lda.unnormalized_transform(&xt).unwrap()),
        &gamma,
        1e-4,
        1e-4,
    );
    // the empty document's parameters are the prior
    assert!(gamma[3 * K..4 * K].iter().all(|g| (g - alpha).abs() < 1e-9));
    let t = read(lda.transform(&xt).unwrap());
    for row in t.chunks(K) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    let b = cpu_bound(&xd, &gamma, &lambda, alpha, alpha);
    let got = lda.score(&xt).unwrap();
    assert!((got - b).abs() <= 1e-4 * b.abs(), "bound {got} vs {b}");
    let words: f64 = xd.iter().sum();
    let ppl = lda.perplexity(&xt).unwrap();
    let want = (-b / words).exp();
    assert!(
        (ppl - want).abs() <= 1e-3 * want,
        "perplexity {ppl} vs {want}"
    );
}

#[test]
fn lda_seeded_fit_is_reproducible_and_gamma_init_has_the_right_moments() {
    let x = tensor(&corpus(), &[N, V]);
    let fit = |seed| {
        let mut l = LatentDirichletAllocation::new(K)
            .with_max_iter(2)
            .with_seed(seed);
        l.fit(&x).unwrap();
        read(l.components().unwrap())
    };
    assert_eq!(fit(3), fit(3));
    assert_ne!(fit(3), fit(4));
    // max_iter 0 keeps the Gamma(100, 1/100) draw: mean 1, sd 0.1
    let mut l = LatentDirichletAllocation::new(200).with_max_iter(0);
    l.fit(&x).unwrap();
    let c = f64s(&read(l.components().unwrap()));
    let m = c.iter().sum::<f64>() / c.len() as f64;
    let sd = (c.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / c.len() as f64).sqrt();
    assert!(
        (m - 1.0).abs() < 0.01 && (sd - 0.1).abs() < 0.01,
        "{m} {sd}"
    );
}

#[test]
fn topic_models_refuse_bad_input() {
    let x = corpus();
    let xt = tensor(&x, &[N, V]);
    let mut neg = x.clone();
    neg[4] = -1.0;
    let neg = tensor(&neg, &[N, V]);
    let mut nan = x.clone();
    nan[2] = f32::NAN;
    let nan = tensor(&nan, &[N, V]);
    assert!(Plsa::new(K).fit(&neg).is_err());
    assert!(Plsa::new(K).fit(&nan).is_err());
    assert!(Plsa::new(0).fit(&xt).is_err());
    assert!(Plsa::new(K).with_max_iter(0).fit(&xt).is_err());
    assert!(Plsa::new(K).fit(&tensor(&[0.0; 6], &[2, 3])).is_err());
    assert!(Plsa::new(K).transform(&xt).is_err());
    assert!(Plsa::new(K).components().is_err());
    assert!(
        Plsa::new(K)
            .with_init_components(&tensor(&[1.0; 4], &[2, 2]))
            .fit(&xt)
            .is_err()
    );
    assert!(LatentDirichletAllocation::new(K).fit(&neg).is_err());
    assert!(LatentDirichletAllocation::new(K).fit(&nan).is_err());
    assert!(LatentDirichletAllocation::new(0).fit(&xt).is_err());
    assert!(
        LatentDirichletAllocation::new(K)
            .with_doc_topic_prior(0.0)
            .fit(&xt)
            .is_err()
    );
    assert!(LatentDirichletAllocation::new(K).transform(&xt).is_err());
    assert!(LatentDirichletAllocation::new(K).perplexity(&xt).is_err());
    assert!(LatentDirichletAllocation::new(K).components().is_err());
    assert!(
        LatentDirichletAllocation::new(K)
            .fit(&tensor(&[1.0; 3], &[3]))
            .is_err()
    );
    let mut lda = LatentDirichletAllocation::new(K).with_max_iter(1);
    lda.fit(&xt).unwrap();
    assert!(lda.transform(&tensor(&[1.0; 4], &[1, 4])).is_err());
    assert!(lda.transform(&neg).is_err());
    assert!(lda.perplexity(&tensor(&[0.0; V], &[1, V])).is_err());
    let mut plsa = Plsa::new(K).with_max_iter(2);
    plsa.fit(&xt).unwrap();
    assert!(plsa.perplexity(&tensor(&[0.0; V], &[1, V])).is_err());
}
