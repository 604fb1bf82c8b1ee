//! The project's own reverse-mode tape for the training graphs it owns, beside candle.
//!
//! candle's autograd zero-fills and adds every gradient, copies transposes for the matrix
//! products' backward and walks a graph of elementary ops; its graph is private
//! (`Tensor::op()` is crate-private in candle 0.11), so no outside driver can replace that. A
//! [`Tape`] records coarse ops (a linear layer, a layer norm, multi-head attention, a whole
//! loss; for a U-Net: convolution with bias, group norm with an optional fused SiLU,
//! nearest-neighbour upsampling, concatenation along channels, GEGLU, cross-attention, the
//! mean squared error) on plain f32 buffers instead:
//!
//! - values and gradients live in buffers the tape keeps between steps: node `i` of the next
//!   step reuses node `i`'s value buffer (and a convolution's columns) when the graph has the
//!   same shape, so a training loop allocates them once;
//! - an op's output gradient is handed back to a pool once its backward has run, and the next
//!   node the backward reaches takes its buffer from that pool: the gradients held at once are
//!   the leaves' and those of the ops still waiting for their backward, not one per op;
//! - the first gradient that reaches a node is written into its buffer, later ones are added
//!   (no zero fill, no separate addition);
//! - matrix products run in faer and write straight into their destination (transposes are
//!   views, not copies); convolutions are im2col + faer products, col2im for the input's
//!   gradient; the row ops reuse the crate's one-pass kernels (layer and group norm, SiLU,
//!   exact GELU, GEGLU, softmax);
//! - work is split over rayon's current pool (one pool, `RAYON_NUM_THREADS`) in one grain per
//!   thread.
//!
//! Inference stays on candle; a trainer builds its forward on a tape, calls
//! [`Tape::backward`] and reads each parameter's gradient with [`Tape::grad`]
//! ([`Tape::grad_store`] hands them to the candle optimiser). Shapes are row-major; every op
//! documents its own.

mod b2c;
mod eeg;
mod engine;
mod image;
mod loss;
mod ops;
mod unet;

use crate::{ModelError, Result};
use candle_core::Tensor;

pub use eeg::ClipLogits;
pub use engine::TrainEngine;
pub use loss::EncoderLossParts;

/// A node of a [`Tape`] (an index into the tape of the current step).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeId(usize);

/// One recorded op: its output shape, what it needs for its backward, and whether a gradient
/// flows into it.
struct Node {
    shape: Vec<usize>,
    op: ops::Op,
    needs_grad: bool,
    /// A gradient was written this backward pass (later ones add).
    has_grad: bool,
}

/// A reverse-mode tape on f32 buffers (see the module documentation).
#[derive(Default)]
pub struct Tape {
    nodes: Vec<Node>,
    /// `values[i]`: node i's output, kept across [`Tape::clear`].
    values: Vec<Vec<f32>>,
    /// `grads[i]`: node i's gradient. A leaf keeps its buffer across [`Tape::clear`]; an op's
    /// is taken from `spare` when its first gradient arrives and returned once its backward
    /// has run.
    grads: Vec<Vec<f32>>,
    /// Gradient buffers of ops whose backward has run, for the nodes the backward reaches
    /// next (and the next step's).
    spare: Vec<Vec<f32>>,
    /// `kept[i]`: node i's work buffer (a convolution's columns), handed back by its op at
    /// [`Tape::clear`] and taken again by the op recorded at index i in the next step.
    kept: Vec<Vec<f32>>,
}

impl std::fmt::Debug for Tape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tape")
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

impl Tape {
    /// An empty tape.
    pub fn new() -> Self {
        Tape::default()
    }

    /// Forgets the recorded ops and keeps their buffers for the next step's graph.
    pub fn clear(&mut self) {
        for (i, node) in self.nodes.drain(..).enumerate() {
            if let Some(buffer) = node.op.into_kept() {
                if self.kept.len() <= i {
                    self.kept.resize_with(i + 1, Vec::new);
                }
                self.kept[i] = buffer;
            }
        }
    }

    /// The work buffer kept for the node about to be recorded (empty the first time).
    fn take_kept(&mut self) -> Vec<f32> {
        self.kept
            .get_mut(self.nodes.len())
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Recorded ops.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The shape of a node's value.
    pub fn shape(&self, id: NodeId) -> &[usize] {
        &self.nodes[id.0].shape
    }

    /// Gives `id` a new shape of the same length: metadata only, the ops recorded before
    /// keep their own sizes. Errors when the lengths differ.
    pub fn reshape(&mut self, id: NodeId, shape: &[usize]) -> Result<()> {
        self.check("reshape", id, shape)?;
        self.nodes[id.0].shape = shape.to_vec();
        Ok(())
    }

    /// A node's value, row-major in [`Tape::shape`].
    pub fn value(&self, id: NodeId) -> &[f32] {
        &self.values[id.0]
    }

    /// A leaf's gradient after [`Tape::backward`] (a parameter, or an input recorded as
    /// trainable); `None` when no gradient reached it, it needs none (inputs), or it is an op's
    /// output (those buffers are reused during the backward).
    pub fn grad(&self, id: NodeId) -> Option<&[f32]> {
        let node = &self.nodes[id.0];
        (node.needs_grad && node.has_grad && matches!(node.op, ops::Op::Leaf))
            .then(|| &self.grads[id.0][..])
    }

    /// A constant input (no gradient) of `shape` holding `values`. Errors when the lengths
    /// differ.
    pub fn input(&mut self, shape: &[usize], values: &[f32]) -> Result<NodeId> {
        self.leaf(shape, values, false)
    }

    /// A trainable leaf of `shape` holding `values` (its gradient is kept). Errors when the
    /// lengths differ.
    pub fn parameter(&mut self, shape: &[usize], values: &[f32]) -> Result<NodeId> {
        self.leaf(shape, values, true)
    }

    /// A trainable leaf holding a copy of a contiguous-or-not f32 tensor's values.
    pub fn parameter_of(&mut self, t: &Tensor) -> Result<NodeId> {
        let values = t.flatten_all()?.to_vec1::<f32>()?;
        self.leaf(t.dims(), &values, true)
    }

    fn leaf(&mut self, shape: &[usize], values: &[f32], needs_grad: bool) -> Result<NodeId> {
        let len: usize = shape.iter().product();
        if len != values.len() {
            return Err(ModelError::Invalid(format!(
                "tape: a leaf of shape {shape:?} needs {len} values, found {}",
                values.len()
            )));
        }
        let (id, out) = self.push(shape, ops::Op::Leaf, needs_grad);
        out.copy_from_slice(values);
        Ok(id)
    }

    /// Records a node and sizes its value buffer (reused when the length is unchanged; the op
    /// writes every element).
    fn push(&mut self, shape: &[usize], op: ops::Op, needs_grad: bool) -> (NodeId, &mut [f32]) {
        let i = self.nodes.len();
        let len: usize = shape.iter().product();
        self.nodes.push(Node {
            shape: shape.to_vec(),
            op,
            needs_grad,
            has_grad: false,
        });
        if self.values.len() <= i {
            self.values.push(Vec::new());
        }
        self.values[i].resize(len, 0.0);
        (NodeId(i), &mut self.values[i])
    }

    /// The values of the recorded nodes and the buffer of the one being written (`i`, the
    /// last).
    fn split_last(&mut self) -> (&[Vec<f32>], &mut [f32]) {
        let (before, last) = self.values.split_at_mut(self.nodes.len() - 1);
        (before, &mut last[0])
    }

    fn needs(&self, ids: &[NodeId]) -> bool {
        ids.iter().any(|id| self.nodes[id.0].needs_grad)
    }

    fn check(&self, what: &str, id: NodeId, expected: &[usize]) -> Result<()> {
        let found = &self.nodes[id.0].shape;
        if found.iter().product::<usize>() != expected.iter().product::<usize>() {
            return Err(ModelError::Invalid(format!(
                "tape {what}: expected {expected:?} values, found shape {found:?}"
            )));
        }
        Ok(())
    }

    /// Back-propagates from the scalar `loss` (its gradient is 1): afterwards every parameter
    /// the loss depends on has its [`Tape::grad`]. Errors when `loss` is not one value.
    pub fn backward(&mut self, loss: NodeId) -> Result<()> {
        self.backward_from(loss, &[1.0])
    }

    /// Back-propagates the upstream gradient `grad` of `node` (the gradients of
    /// `Σ value(node) ⊙ grad`). Errors when `grad`'s length is not the node's.
    pub fn backward_from(&mut self, node: NodeId, grad: &[f32]) -> Result<()> {
        let loss = node;
        if self.values[loss.0].len() != grad.len() {
            return Err(ModelError::Invalid(format!(
                "tape backward: {} upstream gradient values for a node of shape {:?}",
                grad.len(),
                self.nodes[loss.0].shape
            )));
        }
        while self.grads.len() < self.nodes.len() {
            self.grads.push(Vec::new());
        }
        // Buffers of nodes past the graph (a longer earlier step's) join the pool too.
        for buffer in &mut self.grads[self.nodes.len()..] {
            if buffer.capacity() > 0 {
                self.spare.push(std::mem::take(buffer));
            }
        }
        for (i, node) in self.nodes.iter_mut().enumerate() {
            node.has_grad = false;
            if node.needs_grad && matches!(node.op, ops::Op::Leaf) {
                self.grads[i].resize(self.values[i].len(), 0.0);
            } else if self.grads[i].capacity() > 0 {
                self.spare.push(std::mem::take(&mut self.grads[i]));
            }
        }
        if !self.nodes[loss.0].needs_grad {
            return Ok(());
        }
        let mut sink = Sink {
            grads: &mut self.grads,
            nodes: &mut self.nodes,
            spare: &mut self.spare,
            lens: &self.values,
        };
        if let Some((slot, _)) = sink.slot(loss) {
            slot.copy_from_slice(grad);
        }
        for i in (0..=loss.0).rev() {
            if !self.nodes[i].has_grad || matches!(self.nodes[i].op, ops::Op::Leaf) {
                continue;
            }
            let g = std::mem::take(&mut self.grads[i]);
            let mut op = std::mem::replace(&mut self.nodes[i].op, ops::Op::Leaf);
            let mut sink = Sink {
                grads: &mut self.grads,
                nodes: &mut self.nodes,
                spare: &mut self.spare,
                lens: &self.values,
            };
            op.backward(&self.values, &g, &mut sink);
            self.nodes[i].op = op;
            self.spare.push(g);
        }
        Ok(())
    }

    /// The gradients of `params` (tensor, node) as a candle [`GradStore`](candle_core::backprop::GradStore)
    /// keyed by the tensors, for the optimiser and gradient clipping; a parameter no gradient
    /// reached gets zeros.
    pub fn grad_store(
        &self,
        params: &[(Tensor, NodeId)],
    ) -> Result<candle_core::backprop::GradStore> {
        // candle's GradStore has no public constructor; the backward of a constant is empty
        // but for the constant itself.
        let seed = Tensor::zeros((), candle_core::DType::F32, &candle_core::Device::Cpu)?;
        let mut store = seed.backward()?;
        store.remove(&seed);
        for (t, id) in params {
            let grad = match self.grad(*id) {
                Some(g) => Tensor::from_slice(g, t.dims(), t.device())?,
                None => t.zeros_like()?,
            };
            store.insert(t, grad);
        }
        Ok(store)
    }
}

/// Where an op's backward writes its inputs' gradients.
struct Sink<'a> {
    grads: &'a mut [Vec<f32>],
    nodes: &'a mut [Node],
    /// Free gradient buffers (see [`Tape`]'s `spare`).
    spare: &'a mut Vec<Vec<f32>>,
    /// The nodes' values, whose lengths size their gradients.
    lens: &'a [Vec<f32>],
}

impl Sink<'_> {
    /// The gradient buffer of `id` and whether to add to it (a gradient was written before)
    /// or overwrite it (every element: the buffer holds an earlier node's values); `None` when
    /// `id` needs no gradient. An op's first gradient takes the smallest free buffer that
    /// holds it, else the largest free one grows (else a new one).
    fn slot(&mut self, id: NodeId) -> Option<(&mut [f32], bool)> {
        let node = &mut self.nodes[id.0];
        if !node.needs_grad {
            return None;
        }
        let add = node.has_grad;
        node.has_grad = true;
        let len = self.lens[id.0].len();
        if !add && self.grads[id.0].len() != len {
            let fits = |b: &Vec<f32>| b.capacity() >= len;
            let chosen = (0..self.spare.len())
                .filter(|&k| fits(&self.spare[k]))
                .min_by_key(|&k| self.spare[k].capacity())
                .or_else(|| (0..self.spare.len()).max_by_key(|&k| self.spare[k].capacity()));
            let mut buffer = match chosen {
                Some(k) => self.spare.swap_remove(k),
                None => Vec::new(),
            };
            // Overwritten by the op before it is read: the length is all that matters.
            buffer.resize(len, 0.0);
            self.grads[id.0] = buffer;
        }
        Some((&mut self.grads[id.0], add))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain of 40 ops: the backward holds the leaves' gradients and a few pooled buffers,
    /// not one per op, a second step allocates no more, and the gradients are those of the
    /// same chain computed once per op (each op's backward overwrites a reused buffer).
    #[test]
    fn op_gradients_come_from_a_pool() {
        let x0: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin()).collect();
        let w0: Vec<f32> = (0..64).map(|i| (i as f32 * 0.11).cos() * 0.3).collect();
        let mut tape = Tape::new();
        let mut first = Vec::new();
        for step in 0..2 {
            tape.clear();
            let x = tape.parameter(&[8, 8], &x0).unwrap();
            let w = tape.parameter(&[8, 8], &w0).unwrap();
            let mut h = x;
            for _ in 0..20 {
                let l = tape.linear(h, w, None).unwrap();
                h = tape.silu(l);
            }
            let target = tape.input(&[8, 8], &[0.5; 64]).unwrap();
            let loss = tape.mse(h, target).unwrap();
            tape.backward(loss).unwrap();
            let grads = [x, w].map(|id| tape.grad(id).unwrap().to_vec());
            assert!(tape.grad(h).is_none(), "an op's gradient is not kept");
            let held = tape.grads.iter().filter(|g| g.capacity() > 0).count() + tape.spare.len();
            assert!(held <= 6, "{held} gradient buffers held for 43 nodes");
            if step == 0 {
                first = grads.to_vec();
            } else {
                assert_eq!(first, grads, "the second step's gradients differ");
            }
        }
        assert!(first.iter().flatten().all(|g| g.is_finite()));
        assert!(first[0].iter().any(|&g| g != 0.0));
    }
}
