//! The Open Inference Protocol over gRPC against a real three-node cluster,
//! with a tonic client on each node's HTTP port (gRPC and HTTP share it):
//! health, metadata, inference with typed and raw contents against the known
//! outputs of `models/expected.json`, idempotent retries, bad input refused
//! with the right codes, a follower naming the leader, and HTTP still served
//! on the same port.

use boat_admin::grpc::pb::grpc_inference_service_client::GrpcInferenceServiceClient;
use boat_admin::grpc::pb::infer_parameter::ParameterChoice;
use boat_admin::grpc::pb::model_infer_request::InferInputTensor;
use boat_admin::grpc::pb::model_infer_response::InferOutputTensor;
use boat_admin::grpc::pb::{
    InferParameter, InferTensorContents, ModelInferRequest, ModelInferResponse, ModelMetadataRequest,
    ModelReadyRequest, ServerLiveRequest, ServerMetadataRequest, ServerReadyRequest,
};
use boat_tests::{model_path, Sandbox};
use serde_json::{json, Value};
use tonic::transport::Channel;
use tonic::Code;

type Client = GrpcInferenceServiceClient<Channel>;

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(model_path("expected.json")).unwrap()).unwrap()
}

/// The six expected input rows, flattened.
fn rows(exp: &Value) -> Vec<f32> {
    exp["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32))
        .collect()
}

fn mlp_request(contents: Option<InferTensorContents>, raw: Vec<Vec<u8>>) -> ModelInferRequest {
    ModelInferRequest {
        model_name: "mlp".into(),
        id: "grpc-1".into(),
        inputs: vec![InferInputTensor {
            name: "input".into(),
            datatype: "FP32".into(),
            shape: vec![6, 4],
            contents,
            ..Default::default()
        }],
        raw_input_contents: raw,
        ..Default::default()
    }
}

fn fp32(values: Vec<f32>) -> Option<InferTensorContents> {
    Some(InferTensorContents { fp32_contents: values, ..Default::default() })
}

fn output<'a>(r: &'a ModelInferResponse, name: &str) -> &'a InferOutputTensor {
    r.outputs.iter().find(|o| o.name == name).unwrap_or_else(|| panic!("no output {name} in {r:?}"))
}

/// Checks a response against `mlp` in expected.json.
fn check_mlp(r: &ModelInferResponse, exp: &Value) {
    assert_eq!(r.model_name, "mlp");
    assert_eq!(r.model_version, "1");
    assert_eq!(r.id, "grpc-1");
    assert!(r.raw_output_contents.is_empty(), "typed contents expected");
    let probs = output(r, "probabilities");
    assert_eq!(probs.datatype, "FP32");
    assert_eq!(probs.shape, [6, 3]);
    let got = &probs.contents.as_ref().unwrap().fp32_contents;
    let want: Vec<f64> = exp["mlp"]["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
        .collect();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!((f64::from(*g) - w).abs() <= 1e-5, "{got:?} vs {want:?}");
    }
    let label = output(r, "label");
    assert_eq!(label.shape, [6]);
    let want: Vec<i64> = exp["mlp"]["label"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
    assert_eq!(label.datatype, "INT64");
    assert_eq!(label.contents.as_ref().unwrap().int64_contents, want);
}

async fn connect(sb: &Sandbox, i: usize) -> Client {
    GrpcInferenceServiceClient::connect(sb.url(i)).await.unwrap()
}

fn param(p: &ModelInferResponse, key: &str) -> Option<ParameterChoice> {
    p.parameters.get(key).and_then(|v| v.parameter_choice.clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_inference_on_the_http_port() {
    let sb = Sandbox::start(3, &[]).unwrap();
    let leader = sb.wait_for_leader().await.unwrap();
    let up = sb.upload(leader, "mlp", "mlp.onnx").await.unwrap();
    assert_eq!(up.status, 201, "{}", up.text);
    let exp = expected();
    let mut c = connect(&sb, leader).await;

    // Health and metadata.
    assert!(c.server_live(ServerLiveRequest {}).await.unwrap().into_inner().live);
    assert!(c.server_ready(ServerReadyRequest {}).await.unwrap().into_inner().ready);
    let meta = c.server_metadata(ServerMetadataRequest {}).await.unwrap().into_inner();
    assert_eq!(meta.name, "boat");
    let ready = c.model_ready(ModelReadyRequest { name: "mlp".into(), version: Some("1".into()) }).await.unwrap();
    assert!(ready.into_inner().ready);
    let m = c.model_metadata(ModelMetadataRequest { name: "mlp".into(), version: None }).await.unwrap().into_inner();
    assert_eq!(m.name, "mlp");
    assert_eq!(m.versions, ["1"]);
    assert_eq!(m.platform, "onnxruntime_onnx");
    assert_eq!(m.inputs.len(), 1);
    assert_eq!(m.inputs[0].name, "input");
    assert_eq!(m.inputs[0].datatype, "FP32");
    assert_eq!(m.inputs[0].shape, [-1, 4]);

    // Inference with typed contents, then with raw contents.
    let input = rows(&exp);
    let r = c.model_infer(mlp_request(fp32(input.clone()), vec![])).await.unwrap();
    check_mlp(r.get_ref(), &exp);
    let raw: Vec<u8> = input.iter().flat_map(|x| x.to_le_bytes()).collect();
    let r = c.model_infer(mlp_request(None, vec![raw.clone()])).await.unwrap();
    check_mlp(r.get_ref(), &exp);

    // An idempotency key replays the first outcome.
    let mut keyed = mlp_request(fp32(input.clone()), vec![]);
    keyed.parameters.insert(
        "idempotency_key".into(),
        InferParameter { parameter_choice: Some(ParameterChoice::StringParam("grpc-key-1".into())) },
    );
    let first = c.model_infer(keyed.clone()).await.unwrap().into_inner();
    let again = c.model_infer(keyed).await.unwrap().into_inner();
    check_mlp(&again, &exp);
    assert_eq!(param(&first, "duplicate"), Some(ParameterChoice::BoolParam(false)));
    assert_eq!(param(&again, "duplicate"), Some(ParameterChoice::BoolParam(true)));
    assert_eq!(param(&again, "index"), param(&first, "index"));

    // Bad input: refused with a code and a message saying why.
    let refused = |r: Result<tonic::Response<ModelInferResponse>, tonic::Status>, code: Code, says: &str| {
        let s = r.expect_err("refused");
        assert_eq!(s.code(), code, "{s:?}");
        assert!(s.message().contains(says), "{:?} does not mention {says:?}", s.message());
    };
    let mut wrong_type = mlp_request(None, vec![]);
    wrong_type.inputs[0].datatype = "INT64".into();
    wrong_type.inputs[0].contents = Some(InferTensorContents { int64_contents: vec![1; 24], ..Default::default() });
    refused(c.model_infer(wrong_type).await, Code::InvalidArgument, "FP32");
    let mut mixed_fields = mlp_request(None, vec![]);
    mixed_fields.inputs[0].contents = Some(InferTensorContents { int64_contents: vec![1; 24], ..Default::default() });
    refused(c.model_infer(mixed_fields).await, Code::InvalidArgument, "fp32_contents");
    refused(c.model_infer(mlp_request(fp32(input[..20].to_vec()), vec![])).await, Code::InvalidArgument, "24");
    refused(c.model_infer(mlp_request(None, vec![raw[..raw.len() - 4].to_vec()])).await, Code::InvalidArgument, "raw");
    let mut unknown = mlp_request(fp32(input.clone()), vec![]);
    unknown.model_name = "no-such-model".into();
    refused(c.model_infer(unknown).await, Code::NotFound, "no-such-model");
    let s = c.model_metadata(ModelMetadataRequest { name: "no-such-model".into(), version: None }).await.unwrap_err();
    assert_eq!(s.code(), Code::NotFound, "{s:?}");

    // A follower answers metadata itself but sends inference to the leader.
    let follower = (0..3).find(|i| *i != leader).unwrap();
    let leader_addr = sb.url(leader).trim_start_matches("http://").to_string();
    let mut f = connect(&sb, follower).await;
    // Metadata reads are linearizable: the follower has the upload already.
    let fm = f.model_metadata(ModelMetadataRequest { name: "mlp".into(), version: None }).await.unwrap();
    assert_eq!(fm.into_inner().inputs[0].shape, [-1, 4]);
    assert!(f.model_ready(ModelReadyRequest { name: "mlp".into(), version: None }).await.unwrap().into_inner().ready);
    let s = f.model_infer(mlp_request(fp32(input.clone()), vec![])).await.unwrap_err();
    assert_eq!(s.code(), Code::Unavailable, "{s:?}");
    assert!(s.message().contains(&leader_addr), "{s:?}");
    let named = s.metadata().get("x-boat-leader").and_then(|v| v.to_str().ok());
    assert_eq!(named, Some(leader_addr.as_str()));
    let named_id = s.metadata().get("x-boat-leader-id").and_then(|v| v.to_str().ok());
    assert_eq!(named_id, Some(leader.to_string().as_str()));
    // A client retries against the address the metadata names.
    let mut retried = Client::connect(format!("http://{}", named.unwrap())).await.unwrap();
    let r = retried.model_infer(mlp_request(fp32(input.clone()), vec![])).await.unwrap().into_inner();
    check_mlp(&r, &exp);

    // HTTP/1.1 on the same port still works, reads and writes.
    let http = sb.client();
    let r = http.get(&sb.url(leader), "/v2/models/mlp").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["inputs"][0]["shape"], json!([-1, 4]));
    let body = json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [6, 4], "data": input}]});
    let r = http.post_json(&sb.url(leader), "/v2/models/mlp/infer", &body).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    let r = http.get(&sb.url(leader), "/no/such/path").await.unwrap();
    assert_eq!(r.status, 404, "{}", r.text);
}
