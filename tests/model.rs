//! The ResNet + fastai-head classifier: shapes, torchvision names and counts, gradients, and
//! the layer-group recipe (freezing, per-group learning rates) with burn's real optimizer.

#[path = "common/python.rs"]
mod python;
#[path = "common/torch_pth.rs"]
mod torch_pth;

use std::collections::HashMap;

use burn::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Distribution, Int, Tensor};
use mednist::learn::device::DeviceChoice;
use mednist::learn::pretrained::load_body;
use mednist::model::{
    Arch, Classifier, Head, LayerGroup, NamedTensor, ResNet, TensorKind, named_tensors, parameter_count,
};
use torch_pth::{Entry, torchvision_entries, torchvision_key};

const CLASSES: usize = 6;

fn cpu() -> Device {
    DeviceChoice::Cpu.resolve().unwrap().0
}

fn images(device: &Device) -> Tensor<4> {
    Tensor::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), device)
}

fn gradients(model: &Classifier, device: &Device) -> GradientsParams {
    let logits = model.forward(images(device));
    let targets = Tensor::<1, Int>::from_ints([1, 4], device);
    let loss = CrossEntropyLossConfig::new().init(device).forward(logits, targets);
    GradientsParams::from_grads(loss.backward(), model)
}

/// fastai's optimizer setup: AdamW, no weight decay on BatchNorm parameters and biases.
fn adamw() -> ModuleOptimizer {
    AdamWConfig::new().with_weight_decay(0.01).init().with_group(
        Classifier::no_weight_decay(),
        AdamWConfig::new().with_weight_decay(0.0).build(),
        None,
    )
}

/// Every float tensor's values, by id. `valid()` first folds in the BatchNorm running
/// statistics that burn keeps pending until the next pass.
fn snapshot<M: Module>(module: &M) -> HashMap<ParamId, Vec<f32>> {
    struct Values(HashMap<ParamId, Vec<f32>>);
    impl ModuleVisitor for Values {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let values = param.val().into_data().try_into_vec::<f32>().unwrap();
            self.0.insert(param.id, values);
        }
    }
    let mut values = Values(HashMap::new());
    module.valid().visit(&mut values);
    values.0
}

/// The `tensors` whose values in `after` are still those of `before`.
fn unchanged<'a>(
    tensors: &'a [NamedTensor],
    before: &HashMap<ParamId, Vec<f32>>,
    after: &Classifier,
) -> Vec<&'a NamedTensor> {
    let after = snapshot(after);
    tensors.iter().filter(|tensor| before[&tensor.id] == after[&tensor.id]).collect()
}

fn paths(tensors: &[&NamedTensor]) -> Vec<String> {
    tensors.iter().map(|tensor| tensor.path.clone()).collect()
}

fn in_body(tensor: &NamedTensor) -> bool {
    tensor.path.starts_with("body.")
}

#[test]
fn arch_names_parse_and_display() {
    for arch in Arch::ALL {
        assert_eq!(arch.to_string().parse::<Arch>(), Ok(arch));
    }
    assert_eq!("resnet18".parse::<Arch>(), Ok(Arch::Resnet18));
    assert_eq!("ResNet50".parse::<Arch>(), Ok(Arch::Resnet50));
    assert_eq!(Arch::default(), Arch::Resnet34);

    let error = "resnet101".parse::<Arch>().unwrap_err().to_string();
    assert!(error.contains("\"resnet101\""), "{error}");
    assert!(error.contains("resnet18, resnet34, resnet50"), "{error}");
}

#[test]
fn body_parameter_counts_match_torchvision() {
    // torchvision's `sum(p.numel() for p in model.parameters())` without `fc`.
    let expected = [(Arch::Resnet18, 11_176_512), (Arch::Resnet34, 21_284_672), (Arch::Resnet50, 23_508_032)];
    for (arch, count) in expected {
        assert_eq!(parameter_count(&ResNet::new(arch, &cpu())), count, "{arch}");
    }
}

#[test]
fn head_and_classifier_parameter_counts() {
    for arch in [Arch::Resnet18, Arch::Resnet50] {
        let pooled = 2 * arch.features();
        // BatchNorm1d(pooled), Linear(pooled→512), BatchNorm1d(512), Linear(512→classes).
        let head = 2 * pooled + pooled * 512 + 2 * 512 + 512 * CLASSES;
        assert_eq!(parameter_count(&Head::new(arch.features(), CLASSES, &cpu())), head);

        let model = Classifier::new(arch, CLASSES, &cpu());
        let body = parameter_count(&model.body);
        assert_eq!(model.parameter_count(), body + head, "{arch}");
    }
}

/// `arch`'s body has exactly `key_count` tensors (torchvision's state dict less `fc.*` and the
/// `num_batches_tracked` counters), among them the `known` keys with their shapes.
fn assert_torchvision_keys(arch: Arch, key_count: usize, known: &[(&str, &[usize])]) {
    let keys: HashMap<String, Vec<usize>> = named_tensors(&ResNet::new(arch, &cpu()))
        .iter()
        .map(|tensor| (torchvision_key(tensor), tensor.shape.clone()))
        .collect();
    assert_eq!(keys.len(), key_count, "{arch}");
    for (key, shape) in known {
        assert_eq!(keys.get(*key).map(Vec::as_slice), Some(*shape), "{arch} {key}");
    }
}

#[test]
fn body_paths_are_torchvision_state_dict_keys() {
    assert_torchvision_keys(
        Arch::Resnet18,
        100,
        &[
            ("conv1.weight", &[64, 3, 7, 7]),
            ("bn1.weight", &[64]),
            ("bn1.running_mean", &[64]),
            ("layer1.0.conv1.weight", &[64, 64, 3, 3]),
            ("layer1.1.bn2.bias", &[64]),
            ("layer2.0.downsample.0.weight", &[128, 64, 1, 1]),
            ("layer2.0.downsample.1.running_var", &[128]),
            ("layer4.1.conv2.weight", &[512, 512, 3, 3]),
        ],
    );
    assert_torchvision_keys(
        Arch::Resnet50,
        265,
        &[
            ("layer1.0.conv3.weight", &[256, 64, 1, 1]),
            ("layer1.0.downsample.0.weight", &[256, 64, 1, 1]),
            ("layer3.5.bn3.weight", &[1024]),
            ("layer4.0.conv2.weight", &[512, 512, 3, 3]),
            ("layer4.2.conv3.weight", &[2048, 512, 1, 1]),
        ],
    );
}

#[test]
fn tensor_kinds_follow_their_layers() {
    let tensors = named_tensors(&Classifier::new(Arch::Resnet18, CLASSES, &cpu()));
    let kind = |path: &str| tensors.iter().find(|tensor| tensor.path == path).unwrap().kind;
    assert_eq!(kind("body.conv1.weight"), TensorKind::Weight);
    assert_eq!(kind("body.layer2.0.downsample.1.gamma"), TensorKind::Norm);
    assert_eq!(kind("body.bn1.running_var"), TensorKind::RunningStat);
    assert_eq!(kind("head.bn1.beta"), TensorKind::Norm);
    assert_eq!(kind("head.fc2.weight"), TensorKind::Weight);
    assert!(tensors.iter().all(|tensor| tensor.kind != TensorKind::Bias), "no layer has a bias");
}

#[test]
fn groups_match_by_path() {
    let tensors = named_tensors(&Classifier::new(Arch::Resnet18, CLASSES, &cpu()));
    let body = Classifier::group(LayerGroup::Body);
    let head = Classifier::group(LayerGroup::Head);
    let no_decay = Classifier::no_weight_decay();
    for tensor in &tensors {
        let path = Some(tensor.path.as_str());
        assert_eq!(body.matches(&tensor.id, path), in_body(tensor), "{}", tensor.path);
        assert_eq!(head.matches(&tensor.id, path), !in_body(tensor), "{}", tensor.path);
        let decays = matches!(tensor.kind, TensorKind::Weight);
        if tensor.kind.is_learnable() {
            assert_eq!(no_decay.matches(&tensor.id, path), !decays, "{}", tensor.path);
        }
    }
}

#[test]
fn forward_gives_logits_per_image() {
    let device = cpu();
    let model = Classifier::new(Arch::Resnet18, CLASSES, &device);
    assert_eq!(model.forward(images(&device)).dims(), [2, CLASSES]);
}

#[test]
fn backward_reaches_every_parameter_with_finite_gradients() {
    let device = cpu().autodiff();
    let model = Classifier::new(Arch::Resnet18, CLASSES, &device);
    let grads = gradients(&model, &device);

    let learnable: Vec<_> = named_tensors(&model).into_iter().filter(|tensor| tensor.kind.is_learnable()).collect();
    assert_eq!(grads.len(), learnable.len());
    for tensor in &learnable {
        let values = match tensor.shape.len() {
            1 => grads.get::<1>(tensor.id).map(|grad| grad.into_data()),
            2 => grads.get::<2>(tensor.id).map(|grad| grad.into_data()),
            4 => grads.get::<4>(tensor.id).map(|grad| grad.into_data()),
            rank => panic!("unexpected rank {rank} for {}", tensor.path),
        };
        let values = values.unwrap_or_else(|| panic!("no gradient for {}", tensor.path));
        let values = values.try_into_vec::<f32>().unwrap();
        assert!(values.iter().all(|v| v.is_finite()), "{}", tensor.path);
        assert!(values.iter().any(|v| *v != 0.0), "all-zero gradient for {}", tensor.path);
    }
}

#[test]
fn eval_mode_is_deterministic_and_train_mode_is_not() {
    let device = cpu().autodiff();
    let model = Classifier::new(Arch::Resnet18, CLASSES, &device);
    let batch = images(&device);

    let train_a = model.forward(batch.clone()).into_data();
    let train_b = model.forward(batch.clone()).into_data();
    assert_ne!(train_a, train_b, "dropout makes training passes differ");

    let eval = model.valid();
    let batch = batch.inner();
    let eval_a = eval.forward(batch.clone()).into_data();
    let eval_b = eval.forward(batch).into_data();
    assert_eq!(eval_a, eval_b);
}

#[test]
fn frozen_body_keeps_weights_but_trains_batchnorm_and_head() {
    let device = cpu().autodiff();
    let model = Classifier::new(Arch::Resnet18, CLASSES, &device).freeze_body();
    let tensors = named_tensors(&model);
    let mut optim = adamw();

    let before = snapshot(&model);
    let grads = gradients(&model, &device);
    let model = optim.step(1e-2, model, grads);

    // Everything trains except the body's conv weights; BatchNorm running statistics update
    // because fastai keeps the frozen body's BatchNorm layers in training mode.
    let kept = unchanged(&tensors, &before, &model);
    let frozen: Vec<_> = tensors.iter().filter(|tensor| in_body(tensor) && tensor.kind == TensorKind::Weight).collect();
    assert_eq!(paths(&kept), paths(&frozen));

    let model = model.unfreeze_body();
    let before = snapshot(&model);
    let grads = gradients(&model, &device);
    let model = optim.step(1e-2, model, grads);
    let kept = unchanged(&tensors, &before, &model);
    assert!(kept.is_empty(), "{:?}", paths(&kept));
}

#[test]
fn per_group_learning_rates_reach_the_optimizer() {
    let device = cpu().autodiff();
    let model = Classifier::new(Arch::Resnet18, CLASSES, &device);
    let tensors = named_tensors(&model);
    let mut optim = adamw();
    // A zero body learning rate makes the body's group visible in the update.
    let mut scheduler = ModuleLrScheduler::new(1e-2).with_group(Classifier::group(LayerGroup::Body), 0.0);

    let before = snapshot(&model);
    let grads = gradients(&model, &device);
    let model = optim.step(scheduler.step(), model, grads);
    let kept = unchanged(&tensors, &before, &model);

    let body_parameters: Vec<_> =
        tensors.iter().filter(|tensor| in_body(tensor) && tensor.kind.is_learnable()).collect();
    assert_eq!(paths(&kept), paths(&body_parameters));
}

#[test]
fn a_torchvision_state_dict_lands_in_the_matching_layers() {
    let dir = tempfile::tempdir().unwrap();
    let pth = dir.path().join("resnet18.pth");
    let entries = torchvision_entries(Arch::Resnet18);
    torch_pth::write_state_dict(&pth, &entries);
    let fills: HashMap<&str, f32> = entries.iter().map(|e| (e.key.as_str(), e.fill)).collect();

    let mut body = ResNet::new(Arch::Resnet18, &cpu());
    load_body(&mut body, &pth).unwrap();
    let values = snapshot(&body);
    let tensors = named_tensors(&body);
    let body_entries = entries.iter().filter(|e| !e.integer && !e.key.starts_with("fc.")).count();
    assert_eq!(tensors.len(), body_entries);
    for tensor in &tensors {
        let expected = fills[torchvision_key(tensor).as_str()];
        let got = &values[&tensor.id];
        assert_eq!(got.len(), tensor.num_elements(), "{}", tensor.path);
        assert!(got.iter().all(|&v| v == expected), "{} holds {} not {expected}", tensor.path, got[0]);
    }
}

#[test]
fn a_state_dict_that_does_not_fit_is_refused_with_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let pth = dir.path().join("broken.pth");
    let mut entries = torchvision_entries(Arch::Resnet18);
    entries.retain(|e| e.key != "layer1.0.conv1.weight");
    let bn = entries.iter_mut().find(|e| e.key == "layer4.1.bn2.running_var").unwrap();
    bn.shape = vec![256];
    entries.push(Entry { key: "extra.weight".into(), shape: vec![3], fill: 1.0, integer: false });
    torch_pth::write_state_dict(&pth, &entries);

    let mut body = ResNet::new(Arch::Resnet18, &cpu());
    let message = format!("{:#}", load_body(&mut body, &pth).unwrap_err());
    assert!(message.contains("broken.pth"), "{message}");
    assert!(message.contains("missing keys: layer1.0.conv1.weight"), "{message}");
    assert!(message.contains("unexpected keys: extra.weight"), "{message}");
    assert!(message.contains("layer4.1.bn2.running_var"), "{message}");
    assert!(!message.contains("fc.weight") && !message.contains("num_batches_tracked"), "{message}");

    let resnet34 = dir.path().join("resnet34.pth");
    torch_pth::write_state_dict(&resnet34, &torchvision_entries(Arch::Resnet34));
    let message = format!("{:#}", load_body(&mut ResNet::new(Arch::Resnet18, &cpu()), &resnet34).unwrap_err());
    assert!(message.contains("unexpected keys: layer1.2.bn1.bias, "), "a resnet34 file in a resnet18: {message}");
    assert!(message.contains(" and 68 more"), "a long list is cut: {message}");
}

#[test]
fn output_side_is_the_side_of_layer4s_maps() {
    let device = cpu();
    let body = ResNet::new(Arch::Resnet18, &device);
    for side in [16, 33, 64] {
        let images = Tensor::<4>::random([1, 3, side, side], Distribution::Normal(0.0, 1.0), &device);
        let [_, _, height, width] = body.forward(images).dims();
        assert_eq!((height, width), (ResNet::output_side(side), ResNet::output_side(side)), "{side}px");
    }
}
