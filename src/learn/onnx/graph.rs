//! The classifier in inference mode as ONNX nodes: every BatchNorm folded into the convolution
//! or linear layer next to it, dropout gone (it is the identity at inference), the temperature
//! and the softmax at the end.

use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, Linear, PaddingConfig2d};
use burn::tensor::Tensor;

use super::proto::attribute_proto::AttributeType;
use super::proto::tensor_proto::DataType;
use super::proto::{AttributeProto, NodeProto, TensorProto};
use crate::model::{Block, Classifier, Head, ResNet};

/// Nodes and initializers (the folded weights), in the order ONNX wants them: each node after
/// the nodes that produce its inputs.
#[derive(Default)]
pub struct Graph {
    pub nodes: Vec<NodeProto>,
    pub initializers: Vec<TensorProto>,
}

impl Graph {
    /// The graph of `model` from the value `input` (`[N, 3, H, W]`, normalised) to class
    /// probabilities in `output`, dividing the logits by `temperature` first when there is one.
    pub fn classifier(model: &Classifier, input: &str, output: &str, temperature: Option<f32>) -> Self {
        let mut graph = Self::default();
        let features = graph.resnet(&model.body, input);
        let mut logits = graph.head(&model.head, &features);
        if let Some(temperature) = temperature {
            let divisor = graph.initializer("temperature", &[], vec![temperature]);
            logits = graph.node("Div", "logits_over_temperature", &[&logits, &divisor], vec![]);
        }
        graph.node_into("Softmax", "softmax", &[&logits], output, vec![int("axis", 1)]);
        graph
    }

    fn resnet(&mut self, body: &ResNet, input: &str) -> String {
        let x = self.conv_bn(&body.conv1, &body.bn1, "conv1", input);
        let x = self.node("Relu", "relu", &[&x], vec![]);
        let mut x = self.max_pool(&body.maxpool, "maxpool", &x);
        for (stage, blocks) in [(1, &body.layer1), (2, &body.layer2), (3, &body.layer3), (4, &body.layer4)] {
            for (index, block) in blocks.iter().enumerate() {
                x = self.block(block, &format!("layer{stage}.{index}"), &x);
            }
        }
        x
    }

    /// torchvision's BasicBlock, or its Bottleneck when `conv3` is there.
    fn block(&mut self, block: &Block, name: &str, input: &str) -> String {
        let x = self.conv_bn(&block.conv1, &block.bn1, &format!("{name}.conv1"), input);
        let x = self.node("Relu", &format!("{name}.relu1"), &[&x], vec![]);
        let mut x = self.conv_bn(&block.conv2, &block.bn2, &format!("{name}.conv2"), &x);
        if let (Some(conv3), Some(bn3)) = (&block.conv3, &block.bn3) {
            let relu = self.node("Relu", &format!("{name}.relu2"), &[&x], vec![]);
            x = self.conv_bn(conv3, bn3, &format!("{name}.conv3"), &relu);
        }
        let identity = match &block.downsample {
            Some((conv, bn)) => self.conv_bn(conv, bn, &format!("{name}.downsample"), input),
            None => input.to_string(),
        };
        let sum = self.node("Add", &format!("{name}.add"), &[&x, &identity], vec![]);
        self.node("Relu", &format!("{name}.relu"), &[&sum], vec![])
    }

    /// fastai's head: concat(max pool, average pool), then BatchNorm, Linear, ReLU, BatchNorm,
    /// Linear, each BatchNorm folded into the Linear after it.
    fn head(&mut self, head: &Head, features: &str) -> String {
        let max = self.node("GlobalMaxPool", "head.maxpool", &[features], vec![]);
        let avg = self.node("GlobalAveragePool", "head.avgpool", &[features], vec![]);
        let pooled = self.node("Concat", "head.concat", &[&max, &avg], vec![int("axis", 1)]);
        let flat = self.node("Flatten", "head.flatten", &[&pooled], vec![int("axis", 1)]);
        let x = self.bn_linear(&head.bn1, &head.fc1, "head.fc1", &flat);
        let x = self.node("Relu", "head.relu", &[&x], vec![]);
        self.bn_linear(&head.bn2, &head.fc2, "head.fc2", &x)
    }

    /// `bn(conv(x))` as one Conv with a bias: `w' = w * s`, `b' = beta - mean * s` per output
    /// channel, where `s = gamma / sqrt(var + eps)`.
    fn conv_bn(&mut self, conv: &Conv2d, bn: &BatchNorm, name: &str, input: &str) -> String {
        assert!(conv.bias.is_none(), "ResNet convolutions have no bias: BatchNorm's shift is theirs");
        let weight = conv.weight.val();
        let dims = weight.dims();
        let (scale, shift) = batch_norm_affine(bn);
        let per_channel = dims[1] * dims[2] * dims[3];
        let mut weight = values(weight);
        for (channel, kernel) in weight.chunks_exact_mut(per_channel).enumerate() {
            kernel.iter_mut().for_each(|w| *w = (f64::from(*w) * scale[channel]) as f32);
        }
        let bias: Vec<f32> = shift.iter().map(|&b| b as f32).collect();
        let weight = self.initializer(&format!("{name}.weight"), &dims, weight);
        let bias = self.initializer(&format!("{name}.bias"), &[dims[0]], bias);
        let PaddingConfig2d::Explicit(top, left, bottom, right) = conv.padding else {
            unreachable!("ResNet convolutions have explicit padding")
        };
        let attributes = vec![
            ints("kernel_shape", &[dims[2], dims[3]]),
            ints("strides", &conv.stride),
            ints("pads", &[top, left, bottom, right]),
            ints("dilations", &conv.dilation),
            int("group", conv.groups as i64),
        ];
        self.node("Conv", name, &[input, &weight, &bias], attributes)
    }

    /// `linear(bn(x))` as one Gemm: burn's weight is `[in, out]`, so row `i` is scaled by
    /// `s[i]` and the bias is `shift · W`.
    fn bn_linear(&mut self, bn: &BatchNorm, linear: &Linear, name: &str, input: &str) -> String {
        let weight = linear.weight.val();
        let [inputs, outputs] = weight.dims();
        let (scale, shift) = batch_norm_affine(bn);
        let weight = values(weight);
        let mut folded = vec![0f32; weight.len()];
        let mut bias = vec![0f64; outputs];
        for row in 0..inputs {
            for column in 0..outputs {
                let w = f64::from(weight[row * outputs + column]);
                folded[row * outputs + column] = (w * scale[row]) as f32;
                bias[column] += shift[row] * w;
            }
        }
        if let Some(linear_bias) = &linear.bias {
            bias.iter_mut().zip(values(linear_bias.val())).for_each(|(b, own)| *b += f64::from(own));
        }
        let weight = self.initializer(&format!("{name}.weight"), &[inputs, outputs], folded);
        let bias = self.initializer(&format!("{name}.bias"), &[outputs], bias.into_iter().map(|b| b as f32).collect());
        self.node("Gemm", name, &[input, &weight, &bias], vec![])
    }

    fn max_pool(&mut self, pool: &MaxPool2d, name: &str, input: &str) -> String {
        let PaddingConfig2d::Explicit(top, left, bottom, right) = pool.padding else {
            unreachable!("the ResNet stem's max pool has explicit padding")
        };
        let attributes = vec![
            ints("kernel_shape", &pool.kernel_size),
            ints("strides", &pool.stride),
            ints("pads", &[top, left, bottom, right]),
            ints("dilations", &pool.dilation),
            int("ceil_mode", i64::from(pool.ceil_mode)),
        ];
        self.node("MaxPool", name, &[input], attributes)
    }

    /// A float32 constant named `name`; returns the name.
    fn initializer(&mut self, name: &str, dims: &[usize], data: Vec<f32>) -> String {
        debug_assert_eq!(data.len(), dims.iter().product::<usize>());
        self.initializers.push(TensorProto {
            name: Some(name.to_string()),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: Some(DataType::Float as i32),
            raw_data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
            ..TensorProto::default()
        });
        name.to_string()
    }

    /// Adds a node whose one output is named after it; returns that name.
    fn node(&mut self, op: &str, name: &str, inputs: &[&str], attributes: Vec<AttributeProto>) -> String {
        self.node_into(op, name, inputs, name, attributes);
        name.to_string()
    }

    fn node_into(&mut self, op: &str, name: &str, inputs: &[&str], output: &str, attributes: Vec<AttributeProto>) {
        self.nodes.push(NodeProto {
            name: Some(name.to_string()),
            op_type: Some(op.to_string()),
            input: inputs.iter().map(|input| input.to_string()).collect(),
            output: vec![output.to_string()],
            attribute: attributes,
            ..NodeProto::default()
        });
    }
}

/// A BatchNorm in inference mode as `x * scale + shift` per channel, in f64 so that folding
/// adds no rounding of its own.
fn batch_norm_affine(bn: &BatchNorm) -> (Vec<f64>, Vec<f64>) {
    let gamma = values(bn.gamma.val());
    let beta = values(bn.beta.val());
    let mean = values(bn.running_mean.value());
    let var = values(bn.running_var.value());
    let scale: Vec<f64> =
        gamma.iter().zip(&var).map(|(&g, &v)| f64::from(g) / (f64::from(v) + bn.epsilon).sqrt()).collect();
    let shift = beta.iter().zip(&mean).zip(&scale).map(|((&b, &m), &s)| f64::from(b) - f64::from(m) * s).collect();
    (scale, shift)
}

fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().try_into_vec::<f32>().expect("model weights are f32")
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(value),
        ..AttributeProto::default()
    }
}

fn ints(name: &str, values: &[usize]) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(AttributeType::Ints as i32),
        ints: values.iter().map(|&v| v as i64).collect(),
        ..AttributeProto::default()
    }
}
