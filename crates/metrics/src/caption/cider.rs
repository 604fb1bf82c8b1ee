//! CIDEr-D as pycocoevalcap's `Cider` computes it (`cider_scorer.py`,
//! n = 4, sigma = 6), on tokenized captions.
//!
//! Document frequencies come from the references of the evaluated set
//! itself: an n-gram's df is the number of items whose references contain
//! it, and idf uses `log(number of items)`. Each caption becomes, per n, a
//! tf-idf vector; the hypothesis is compared with each reference by a
//! clipped cosine (`min(hyp, ref) * ref` summed over the hypothesis'
//! n-grams), times a Gaussian penalty on the length difference, averaged
//! over n and over references and multiplied by 10. Quirks kept as the code
//! has them: the "length" in the penalty is the number of *bigrams* (the
//! code counts terms when its 0-based order index is 1), and a zero norm
//! leaves the unnormalised sum in place.

use std::collections::HashMap;

use crate::bleu::is_python_whitespace;

/// Highest n-gram order.
pub const CIDER_N: usize = 4;
/// Standard deviation of the length penalty.
pub const CIDER_SIGMA: f64 = 6.0;

/// Corpus CIDEr-D and per-item scores (pycocoevalcap's scale, ×10 included).
#[derive(Debug, Clone, PartialEq)]
pub struct CocoCider {
    /// Mean of the item scores.
    pub corpus: f64,
    /// Score of each item, `(n_items,)`.
    pub items: Vec<f64>,
}

/// N-gram term frequencies in first-occurrence order (the order the Python
/// dict iterates, which fixes the order of the floating-point sums).
struct Counts {
    grams: Vec<Vec<String>>,
    tf: Vec<f64>,
}

fn counts(caption: &str) -> Counts {
    let words: Vec<&str> = caption
        .split(is_python_whitespace)
        .filter(|w| !w.is_empty())
        .collect();
    let mut index: HashMap<Vec<String>, usize> = HashMap::new();
    let mut c = Counts {
        grams: Vec::new(),
        tf: Vec::new(),
    };
    for n in 1..=CIDER_N {
        for gram in words.windows(n) {
            let key: Vec<String> = gram.iter().map(|w| w.to_string()).collect();
            match index.get(&key) {
                Some(&i) => c.tf[i] += 1.0,
                None => {
                    index.insert(key.clone(), c.grams.len());
                    c.grams.push(key);
                    c.tf.push(1.0);
                }
            }
        }
    }
    c
}

/// A caption's tf-idf vectors per order, their norms and its "length".
struct TfIdf {
    vec: [HashMap<Vec<String>, f64>; CIDER_N],
    order: [Vec<Vec<String>>; CIDER_N],
    norm: [f64; CIDER_N],
    length: f64,
}

fn tf_idf(c: &Counts, df: &HashMap<Vec<String>, f64>, log_n_items: f64) -> TfIdf {
    let mut out = TfIdf {
        vec: Default::default(),
        order: Default::default(),
        norm: [0.0; CIDER_N],
        length: 0.0,
    };
    for (gram, &tf) in c.grams.iter().zip(&c.tf) {
        let n = gram.len() - 1;
        let doc_freq = df.get(gram).copied().unwrap_or(0.0).max(1.0).ln();
        let v = tf * (log_n_items - doc_freq);
        out.vec[n].insert(gram.clone(), v);
        out.order[n].push(gram.clone());
        out.norm[n] += v * v;
        if n == 1 {
            out.length += tf;
        }
    }
    for x in &mut out.norm {
        *x = x.sqrt();
    }
    out
}

fn similarity(hyp: &TfIdf, reference: &TfIdf) -> [f64; CIDER_N] {
    let delta = hyp.length - reference.length;
    let mut val = [0.0; CIDER_N];
    for (n, v) in val.iter_mut().enumerate() {
        for gram in &hyp.order[n] {
            let h = hyp.vec[n][gram];
            let r = reference.vec[n].get(gram).copied().unwrap_or(0.0);
            *v += h.min(r) * r;
        }
        if hyp.norm[n] != 0.0 && reference.norm[n] != 0.0 {
            *v /= hyp.norm[n] * reference.norm[n];
        }
        // np.e ** x, not exp(x): pow rounds differently in the last bit.
        *v *= std::f64::consts::E.powf(-(delta * delta) / (2.0 * CIDER_SIGMA * CIDER_SIGMA));
    }
    val
}

/// pycocoevalcap CIDEr-D over a corpus. Shapes as in
/// [`coco_bleu`](super::coco_bleu::coco_bleu).
pub fn coco_cider(hypotheses: &[String], references: &[Vec<String>]) -> CocoCider {
    let ref_counts: Vec<Vec<Counts>> = references
        .iter()
        .map(|refs| refs.iter().map(|r| counts(r)).collect())
        .collect();
    let mut df: HashMap<Vec<String>, f64> = HashMap::new();
    for refs in &ref_counts {
        let mut seen: std::collections::HashSet<&Vec<String>> = Default::default();
        for c in refs {
            seen.extend(c.grams.iter());
        }
        for gram in seen {
            *df.entry(gram.clone()).or_insert(0.0) += 1.0;
        }
    }
    let log_n_items = (references.len() as f64).ln();
    let items: Vec<f64> = hypotheses
        .iter()
        .zip(&ref_counts)
        .map(|(hyp, refs)| {
            let h = tf_idf(&counts(hyp), &df, log_n_items);
            let mut score = [0.0; CIDER_N];
            for r in refs {
                let sim = similarity(&h, &tf_idf(r, &df, log_n_items));
                for n in 0..CIDER_N {
                    score[n] += sim[n];
                }
            }
            let mean = score.iter().sum::<f64>() / CIDER_N as f64;
            mean / refs.len() as f64 * 10.0
        })
        .collect();
    let corpus = items.iter().sum::<f64>() / items.len().max(1) as f64;
    CocoCider { corpus, items }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn single_item_corpus_scores_zero() {
        // log(1) = 0 makes every idf weight zero.
        let c = coco_cider(&s(&["a dog"]), &[s(&["a dog"])]);
        assert_eq!(c.items, vec![0.0]);
    }

    #[test]
    fn exact_match_beats_partial_match() {
        let refs = vec![s(&["a dog on a couch"]), s(&["two cats in a box"])];
        let good = coco_cider(&s(&["a dog on a couch", "two cats in a box"]), &refs);
        let bad = coco_cider(&s(&["a dog", "two dogs"]), &refs);
        assert!(good.corpus > bad.corpus && bad.corpus >= 0.0);
    }

    #[test]
    fn length_counts_bigrams() {
        let c = counts("a b c");
        let t = tf_idf(&c, &HashMap::new(), 1.0);
        assert_eq!(t.length, 2.0);
    }
}
