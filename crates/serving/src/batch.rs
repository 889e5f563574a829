//! Dynamic batching: several requests for one model in one ONNX Runtime call.
//!
//! See [`crate::ModelRegistry::infer_batch`] for the rules. Dimension 0 of every dynamic
//! output is assumed to be the batch dimension, as in models exported with a dynamic batch.

use std::ops::Range;

use crate::check;
use crate::error::ServingError;
use crate::model::{IoKind, LoadedModel, ModelMeta};
use crate::output::Output;
use crate::tensor::{Tensor, TensorData};

type Outcome = Result<Vec<Output>, ServingError>;

/// A validated request waiting to run: its index in the batch and its inputs in model order.
struct Pending {
    index: usize,
    inputs: Vec<Tensor>,
}

/// Checks each request (against `max_elements` too), then runs the valid ones.
pub(crate) fn run_batch(model: &LoadedModel, requests: Vec<Vec<Tensor>>, max_elements: usize) -> Vec<Outcome> {
    let mut results: Vec<Option<Outcome>> = (0..requests.len()).map(|_| None).collect();
    let mut pending = Vec::new();
    for (index, inputs) in requests.into_iter().enumerate() {
        match check::check_inputs(model.meta(), inputs, max_elements) {
            Ok(inputs) => pending.push(Pending { index, inputs }),
            Err(e) => results[index] = Some(Err(e)),
        }
    }

    if batchable(model.meta()) {
        for group in group_compatible(pending) {
            run_group(model, group, &mut results);
        }
    } else {
        for p in pending {
            results[p.index] = Some(model.run(p.inputs));
        }
    }

    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(ServingError::Inference("request was not run".into()))))
        .collect()
}

/// Whether the model's declared shapes allow concatenating requests along dimension 0.
fn batchable(meta: &ModelMeta) -> bool {
    let inputs_ok = !meta.inputs.is_empty() && meta.inputs.iter().all(|i| i.shape.first() == Some(&-1));
    let outputs_ok = meta.outputs.iter().all(|o| match o.kind {
        IoKind::Tensor => o.shape.first() == Some(&-1),
        IoKind::Sequence => true,
        IoKind::Map => false,
    });
    inputs_ok && outputs_ok
}

/// Rows of a checked request: dimension 0, which must agree across its inputs.
fn rows_of(inputs: &[Tensor]) -> Option<usize> {
    let first = inputs.first()?.rows()?;
    inputs.iter().all(|t| t.rows() == Some(first)).then_some(first)
}

/// Everything but dimension 0 of each input: requests with equal keys can be concatenated.
fn trailing_dims(inputs: &[Tensor]) -> Vec<Vec<i64>> {
    inputs.iter().map(|t| t.shape().get(1..).unwrap_or_default().to_vec()).collect()
}

/// Groups requests that can share a run, keeping request order within each group.
/// Requests whose inputs disagree on their row count form groups of one.
fn group_compatible(pending: Vec<Pending>) -> Vec<Vec<Pending>> {
    /// Trailing dims per input; `None` for a request that cannot be combined.
    type GroupKey = Option<Vec<Vec<i64>>>;
    let mut groups: Vec<(GroupKey, Vec<Pending>)> = Vec::new();
    for p in pending {
        let key = rows_of(&p.inputs).map(|_| trailing_dims(&p.inputs));
        match groups.iter_mut().find(|(k, _)| key.is_some() && *k == key) {
            Some((_, members)) => members.push(p),
            None => groups.push((key, vec![p])),
        }
    }
    groups.into_iter().map(|(_, members)| members).collect()
}

fn run_group(model: &LoadedModel, group: Vec<Pending>, results: &mut [Option<Outcome>]) {
    if group.len() > 1 {
        if let Some(split) = run_combined(model, &group) {
            for (p, outputs) in group.iter().zip(split) {
                results[p.index] = Some(Ok(outputs));
            }
            return;
        }
        tracing::debug!(model = %model.meta().name, "combined run not possible; running requests one by one");
    }
    for p in group {
        results[p.index] = Some(model.run(p.inputs));
    }
}

/// Concatenates the group, runs once and splits the outputs per request. `None` if any
/// step is not possible, in which case the caller runs requests individually.
fn run_combined(model: &LoadedModel, group: &[Pending]) -> Option<Vec<Vec<Output>>> {
    let mut ranges: Vec<Range<usize>> = Vec::with_capacity(group.len());
    let mut total = 0usize;
    for p in group {
        let rows = rows_of(&p.inputs)?;
        ranges.push(total..total + rows);
        total += rows;
    }

    let first = &group.first()?.inputs;
    let mut combined = Vec::with_capacity(first.len());
    for (j, template) in first.iter().enumerate() {
        let parts: Vec<&TensorData> = group.iter().map(|p| p.inputs.get(j).map(Tensor::data)).collect::<Option<_>>()?;
        let data = TensorData::concat(&parts)?;
        let mut shape = template.shape().to_vec();
        *shape.first_mut()? = total as i64;
        if crate::tensor::element_count(&shape).ok()? != data.len() {
            return None;
        }
        combined.push(Tensor::from_checked(template.name().to_string(), shape, data));
    }

    let outputs = match model.run(combined) {
        Ok(outputs) => outputs,
        Err(e) => {
            tracing::debug!(error = %e, "combined run failed");
            return None;
        }
    };
    if !outputs.iter().all(|o| o.rows() == Some(total)) {
        return None;
    }
    Some(ranges.into_iter().map(|r| outputs.iter().map(|o| o.slice_rows(r.clone())).collect()).collect())
}
