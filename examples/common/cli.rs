//! Every example's command line. The flags come in groups, each flattened into the
//! examples that use all of it: [`Common`] (every example that reads data), [`Train`]
//! (every training example), [`Optim`] (those that let the optimizer and schedule be
//! chosen), [`TestLimit`] (those that evaluate on the test set), plus each family's or
//! example's own. An example accepts exactly the flags its struct holds: a flag it would
//! not read is refused by clap like any unknown flag.
//!
//! [`command`] is the one place where an example's name meets its struct, its description
//! and its defaults (`--out out/NAME`, `--lr`, ...); the examples call [`parse`] with their
//! name, and `tests/example_args.rs` reads the same commands.

use std::path::PathBuf;

use clap::{ArgMatches, Command, CommandFactory, FromArgMatches};

/// The default of `--epochs`.
pub const DEFAULT_EPOCHS: usize = 10;

/// The default of `unsupervised`'s `--limit`.
pub const UNSUPERVISED_LIMIT: usize = 10_000;
/// `manifold`'s default `--limit`: the n x n matrices of the exact methods grow fast.
pub const MANIFOLD_LIMIT: usize = 2_000;

/// What every example that reads a data set takes.
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// Data directory (default: $CINDER_DATA, then /usr/share/datasets/fashion-mnist).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Use only the first N training images (N at least 1).
    #[arg(long, value_parser = at_least_one)]
    pub limit: Option<usize>,
    /// Random seed (initialization, shuffling, sampling).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory: metrics.json, curves and pictures.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
}

/// What every training example takes.
#[derive(clap::Args, Debug, Clone)]
pub struct Train {
    /// Training epochs, at least 1 [default: 10].
    #[arg(long, value_parser = at_least_one)]
    pub epochs: Option<usize>,
    /// Examples per batch, at least 1.
    #[arg(long = "batch-size", default_value_t = 64, value_parser = at_least_one)]
    pub batch_size: usize,
    /// Learning rate, a finite number >= 0.
    #[arg(long, default_value = "1e-3", value_parser = non_negative)]
    pub lr: f32,
}

impl Train {
    /// The number of epochs: `--epochs`, or [`DEFAULT_EPOCHS`].
    pub fn epochs(&self) -> usize {
        self.epochs.unwrap_or(DEFAULT_EPOCHS)
    }
}

/// The optimizer and the learning-rate schedule, for the examples that let them be chosen.
#[derive(clap::Args, Debug, Clone)]
pub struct Optim {
    /// Optimizer: adam, adamw (decoupled weight decay 1e-2) or sgd (momentum 0.9).
    #[arg(long, default_value = "adam", value_parser = ["adam", "adamw", "sgd"])]
    pub optimizer: String,
    /// Learning-rate schedule: cosine (decay to 0 over the run, per step) or constant.
    #[arg(long, default_value = "cosine", value_parser = ["cosine", "constant"])]
    pub schedule: String,
}

/// The size of the test set, for the examples that evaluate on it.
#[derive(clap::Args, Debug, Clone)]
pub struct TestLimit {
    /// Use only the first N test images (N at least 1).
    #[arg(long = "test-limit", value_parser = at_least_one)]
    pub test_limit: Option<usize>,
}

/// The classifier examples: `mlp_mnist`, `lenet_mnist`, `lstm_mnist`, `vit_mnist`,
/// `vgg_cifar`, `alexnet_cifar`, `resnet_cifar`.
#[derive(clap::Parser, Debug, Clone)]
pub struct Classifier {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub train: Train,
    #[command(flatten)]
    pub optim: Optim,
    #[command(flatten)]
    pub test: TestLimit,
    /// Fraction of the training images held out for validation, strictly between 0 and 1.
    #[arg(long = "val-fraction", default_value_t = 0.1, value_parser = open_fraction)]
    pub val_fraction: f32,
    /// Stop after this many epochs in a row without a better validation accuracy (0: never
    /// stop early).
    #[arg(long, default_value_t = 3)]
    pub patience: usize,
    /// Continue from last.safetensors in --out, along its stored schedule (--epochs may then
    /// be left out).
    #[arg(long)]
    pub resume: bool,
    /// Train data-parallel on every rank of the MPI job that started the example (`mpirun
    /// -np N ... --distributed`; needs a build with `--features mpi`). --batch-size is per
    /// rank; rank 0 alone prints, writes and shows progress.
    #[arg(long)]
    pub distributed: bool,
}

/// `char_lm`.
#[derive(clap::Parser, Debug, Clone)]
pub struct CharLm {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub train: Train,
    #[command(flatten)]
    pub optim: Optim,
    /// Model: lstm (one layer of 256 units) or transformer (4 pre-norm causal layers of
    /// width 128, 4 heads).
    #[arg(long, default_value = "lstm", value_parser = ["lstm", "transformer"])]
    pub arch: String,
    /// Characters per training window, and the context of sampling (at least 2).
    #[arg(long, default_value_t = 64, value_parser = at_least_two)]
    pub context: usize,
    /// Training steps (batches of random windows) per epoch, at least 1.
    #[arg(long = "steps-per-epoch", default_value_t = 300, value_parser = at_least_one)]
    pub steps_per_epoch: usize,
    /// Validation characters scored after each epoch (at least 1; all of them when fewer).
    #[arg(long = "val-chars", default_value_t = 100_000, value_parser = at_least_one)]
    pub val_chars: usize,
    /// Characters of each printed sample, at least 1.
    #[arg(long = "sample-len", default_value_t = 300, value_parser = at_least_one)]
    pub sample_len: usize,
    /// Continue from last.safetensors in --out, along its stored schedule (--epochs may then
    /// be left out).
    #[arg(long)]
    pub resume: bool,
}

/// `autoencoder`.
#[derive(clap::Parser, Debug, Clone)]
pub struct Autoencoder {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub train: Train,
    #[command(flatten)]
    pub optim: Optim,
    #[command(flatten)]
    pub test: TestLimit,
    /// Architecture: mlp (784-256-code) or conv.
    #[arg(long, default_value = "mlp", value_parser = ["mlp", "conv"])]
    pub arch: String,
    /// Width of the code, at least 1.
    #[arg(long, default_value_t = 20, value_parser = at_least_one)]
    pub latent: usize,
    /// Denoising: standard deviation of the Gaussian input noise, at least 0 (0 = off).
    #[arg(long, default_value_t = 0.0, value_parser = non_negative)]
    pub noise: f32,
    /// Denoising: probability of zeroing each input pixel, in [0, 1) (masking noise; 0 =
    /// off). Exclusive with --noise.
    #[arg(long, default_value_t = 0.0, value_parser = probability, conflicts_with = "noise")]
    pub mask: f32,
    /// Sparse autoencoder: weight of the L1 penalty on the code, at least 0 (0 = off).
    #[arg(long, default_value_t = 0.0, value_parser = non_negative)]
    pub sparsity: f32,
    /// Tie the decoder's weights to the encoder's.
    #[arg(long)]
    pub tied: bool,
}

/// `vae`.
#[derive(clap::Parser, Debug, Clone)]
pub struct Vae {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub train: Train,
    #[command(flatten)]
    pub optim: Optim,
    #[command(flatten)]
    pub test: TestLimit,
    /// Architecture: mlp (784-400-latent) or conv.
    #[arg(long, default_value = "mlp", value_parser = ["mlp", "conv"])]
    pub arch: String,
    /// Width of the latent code, at least 1.
    #[arg(long, default_value_t = 20, value_parser = at_least_one)]
    pub latent: usize,
}

/// `flow`: a RealNVP normalizing flow.
#[derive(clap::Parser, Debug, Clone)]
pub struct Flow {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub train: Train,
    #[command(flatten)]
    pub optim: Optim,
    #[command(flatten)]
    pub test: TestLimit,
    /// Channels of the hidden layers of every coupling's s/t network, at least 1.
    #[arg(long, default_value_t = 16, value_parser = at_least_one)]
    pub hidden: usize,
    /// Residual blocks per s/t network (0 or more).
    #[arg(long, default_value_t = 1)]
    pub blocks: usize,
    /// Coupling layers of each kind (checkerboard, channel) per scale, at least 1.
    #[arg(long, default_value_t = 3, value_parser = at_least_one)]
    pub couplings: usize,
    /// Scales: 1 (28x28 only), 2 (a squeeze and split to 14x14) or 3 (and to 7x7).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=3))]
    pub scales: u8,
}

/// `gan` (Adam with betas (0.5, 0.999) and a constant learning rate, as DCGAN).
#[derive(clap::Parser, Debug, Clone)]
pub struct Gan {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub train: Train,
    /// Architecture: mlp, dcgan, infogan (the DCGAN with a 10-way categorical code, two
    /// continuous codes and a Q head on the discriminator) or infogan-mlp (the same codes
    /// and Q head on the MLP GAN).
    #[arg(long, default_value = "mlp", value_parser = ["mlp", "dcgan", "infogan", "infogan-mlp"])]
    pub arch: String,
    /// Loss: minimax, nonsaturating, wgan (weight clipping), wgan-gp, lsgan, hinge, dragan
    /// (non-saturating with DRAGAN's penalty) or began (an autoencoder discriminator with
    /// the k_t balance). InfoGAN takes minimax, nonsaturating, lsgan or hinge.
    #[arg(long, default_value = "nonsaturating", value_parser =
        ["minimax", "nonsaturating", "wgan", "wgan-gp", "lsgan", "hinge", "dragan", "began"])]
    pub loss: String,
    /// Conditional GAN (a label embedding concatenated to z and to D's input; not with
    /// infogan).
    #[arg(long)]
    pub conditional: bool,
    /// Width of z (of the noise part for infogan), at least 1.
    #[arg(long, default_value_t = 64, value_parser = at_least_one)]
    pub latent: usize,
    /// BEGAN's diversity ratio gamma, in (0, 1] (only with --loss began) [default: 0.5].
    #[arg(long)]
    pub gamma: Option<f32>,
    /// BEGAN's learning rate of the balance k_t (only with --loss began) [default: 0.001].
    #[arg(long = "lambda-k")]
    pub lambda_k: Option<f32>,
    /// A LeNet-5 checkpoint (lenet_mnist's best.safetensors) that labels generated
    /// samples, for the class coverage, the conditional GAN's class accuracy and the
    /// purity of InfoGAN's categorical code on generated images.
    #[arg(long)]
    pub classifier: Option<PathBuf>,
}

/// `siamese`.
#[derive(clap::Parser, Debug, Clone)]
pub struct Siamese {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub train: Train,
    #[command(flatten)]
    pub optim: Optim,
    #[command(flatten)]
    pub test: TestLimit,
    /// Width of the embedding, at least 1.
    #[arg(long, default_value_t = 2, value_parser = at_least_one)]
    pub latent: usize,
}

/// `dann`: domain adaptation from Fashion-MNIST to a shifted copy of it.
#[derive(clap::Parser, Debug, Clone)]
pub struct Dann {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub train: Train,
    #[command(flatten)]
    pub optim: Optim,
    #[command(flatten)]
    pub test: TestLimit,
    /// Target domain: texture (MNIST-M's construction in grey: |image - texture patch|),
    /// background (the image over a texture patch at --contrast) or inverted (255 - image,
    /// plus Gaussian noise of --noise).
    #[arg(long, default_value = "texture", value_parser = ["texture", "background", "inverted"])]
    pub target: String,
    /// The inverted target's noise: standard deviation in units of the full range (a
    /// finite number, at least 0).
    #[arg(long, default_value_t = 0.1, value_parser = non_negative)]
    pub noise: f32,
    /// The background target's texture contrast, in [0, 1] (0: the source itself).
    #[arg(long, default_value_t = 1.0, value_parser = unit_interval)]
    pub contrast: f32,
}

/// `style_transfer`: neural style transfer with Gram matrices.
#[derive(clap::Parser, Debug, Clone)]
pub struct StyleTransfer {
    #[command(flatten)]
    pub common: Common,
    /// A torchvision VGG-16 state dict as safetensors (only features.* is read), or this
    /// example's own fashion_vgg11.safetensors; without it, a VGG-11 is first trained on
    /// Fashion-MNIST (--pretrain-steps).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Content image (PNG; default: the first Fashion-MNIST test image).
    #[arg(long)]
    pub content: Option<PathBuf>,
    /// Style image (PNG; default: a generated pattern of diagonal stripes).
    #[arg(long)]
    pub style: Option<PathBuf>,
    /// Side of the square images, in pixels (at least 16).
    #[arg(long, default_value_t = 64, value_parser = at_least_sixteen)]
    pub size: usize,
    /// Adam steps on the image's pixels, at least 1.
    #[arg(long, default_value_t = 300, value_parser = at_least_one)]
    pub steps: usize,
    /// Adam's learning rate on the pixels (in [0, 1]), a finite number >= 0.
    #[arg(long, default_value = "0.02", value_parser = non_negative)]
    pub lr: f32,
    /// Weight of the style loss against the content loss's 1 (default: 1e6 for VGG-16,
    /// 1e5 for the Fashion-MNIST VGG-11), a finite number >= 0.
    #[arg(long = "style-weight", value_parser = non_negative)]
    pub style_weight: Option<f32>,
    /// Batches of 64 Fashion-MNIST images the VGG-11 is trained for when no --weights is
    /// given, at least 1.
    #[arg(long = "pretrain-steps", default_value_t = 400, value_parser = at_least_one)]
    pub pretrain_steps: usize,
}

/// `unsupervised`: PCA, k-means, a Gaussian mixture, probabilistic PCA, FastICA and NMF.
#[derive(clap::Parser, Debug, Clone)]
pub struct Unsupervised {
    #[command(flatten)]
    pub common: Common,
    /// Clusters of k-means and components of the Gaussian mixture (at least 1).
    #[arg(long, default_value_t = 10, value_parser = at_least_one)]
    pub k: usize,
    /// PCA and probabilistic PCA components (at least 1).
    #[arg(long, default_value_t = 50, value_parser = at_least_one)]
    pub components: usize,
    /// k-means restarts; the best is kept (at least 1).
    #[arg(long = "n-init", default_value_t = 5, value_parser = at_least_one)]
    pub n_init: usize,
    /// Largest number of EM iterations of the Gaussian mixture (at least 1).
    #[arg(long = "gmm-iter", default_value_t = 30, value_parser = at_least_one)]
    pub gmm_iter: usize,
    /// Gaussian mixture restarts from different k-means initializations; the highest
    /// log-likelihood is kept (at least 1).
    #[arg(long = "gmm-n-init", default_value_t = 1, value_parser = at_least_one)]
    pub gmm_n_init: usize,
    /// FastICA components, on the data whitened by PCA inside FastICA (at least 1).
    #[arg(long = "ica-k", default_value_t = 16, value_parser = at_least_one)]
    pub ica_k: usize,
    /// Largest number of FastICA iterations (at least 1).
    #[arg(long = "ica-iter", default_value_t = 200, value_parser = at_least_one)]
    pub ica_iter: usize,
    /// FastICA algorithm.
    #[arg(long = "ica-algorithm", default_value = "parallel", value_parser = ["parallel", "deflation"])]
    pub ica_algorithm: String,
    /// NMF components (at least 1).
    #[arg(long = "nmf-k", default_value_t = 16, value_parser = at_least_one)]
    pub nmf_k: usize,
    /// Largest number of NMF multiplicative-update iterations (at least 1).
    #[arg(long = "nmf-iter", default_value_t = 200, value_parser = at_least_one)]
    pub nmf_iter: usize,
    /// NMF tolerance (scikit-learn's, checked every 10 iterations; 0 runs every
    /// iteration), a finite number >= 0.
    #[arg(long = "nmf-tol", default_value = "1e-4", value_parser = non_negative)]
    pub nmf_tol: f32,
    /// NMF divergence: Frobenius norm or generalized Kullback-Leibler.
    #[arg(long = "nmf-loss", default_value = "frobenius", value_parser = ["frobenius", "kl"])]
    pub nmf_loss: String,
    /// NMF starting factors: a safetensors file with f32 tensors `W` [n, nmf-k] and `H`
    /// [nmf-k, 784] (default: scikit-learn's random init from --seed).
    #[arg(long = "nmf-init")]
    pub nmf_init: Option<PathBuf>,
    /// The methods to run, comma-separated, from pca, kmeans, gmm, ppca, ica, nmf (gmm
    /// also runs pca, on whose projection it is fitted).
    #[arg(
        long,
        default_value = "pca,kmeans,gmm,ppca,ica,nmf",
        value_delimiter = ',',
        value_parser = ["pca", "kmeans", "gmm", "ppca", "ica", "nmf"]
    )]
    pub methods: Vec<String>,
}

impl Unsupervised {
    /// The number of training images: `--limit`, or [`UNSUPERVISED_LIMIT`].
    pub fn limit(&self) -> usize {
        self.common.limit.unwrap_or(UNSUPERVISED_LIMIT)
    }

    /// Whether `--methods` names `m`.
    pub fn runs(&self, m: &str) -> bool {
        self.methods.iter().any(|x| x == m)
    }
}

/// `topics`: pLSA and LDA on the fortunes.
#[derive(clap::Parser, Debug, Clone)]
pub struct Topics {
    #[command(flatten)]
    pub common: Common,
    /// Topics (at least 1).
    #[arg(long, default_value_t = 10, value_parser = at_least_one)]
    pub k: usize,
    /// EM iterations of both methods (at least 1; 10 is scikit-learn's LDA default).
    #[arg(long, default_value_t = 10, value_parser = at_least_one)]
    pub iter: usize,
    /// Vocabulary size: the most frequent terms kept (max_features, at least 1).
    #[arg(long, default_value_t = 1000, value_parser = at_least_one)]
    pub vocab: usize,
    /// Which models to fit: plsa, lda or both.
    #[arg(long, default_value = "both", value_parser = ["plsa", "lda", "both"])]
    pub method: String,
}

/// `manifold`: t-SNE, Isomap and LLE embeddings of Fashion-MNIST.
#[derive(clap::Parser, Debug, Clone)]
pub struct Manifold {
    #[command(flatten)]
    pub common: Common,
    /// Which embeddings to fit: tsne, isomap, lle or all.
    #[arg(long, default_value = "all", value_parser = ["tsne", "isomap", "lle", "all"])]
    pub method: String,
    /// Neighbours of the Isomap and LLE graphs, and of the t-SNE trustworthiness (at
    /// least 1).
    #[arg(long, default_value_t = 10, value_parser = at_least_one)]
    pub neighbors: usize,
    /// t-SNE perplexity (positive, below the number of images).
    #[arg(long, default_value_t = 30.0, value_parser = positive_f32)]
    pub perplexity: f32,
    /// t-SNE gradient-descent iterations (at least 1).
    #[arg(long = "tsne-iter", default_value_t = 1000, value_parser = at_least_one)]
    pub tsne_iter: usize,
    /// PCA dimensions t-SNE runs on (at least 1; Isomap and LLE use the raw pixels).
    #[arg(long, default_value_t = 50, value_parser = at_least_one)]
    pub pca: usize,
}

impl Manifold {
    /// The number of training images: `--limit`, or [`MANIFOLD_LIMIT`].
    pub fn limit(&self) -> usize {
        self.common.limit.unwrap_or(MANIFOLD_LIMIT)
    }

    /// Whether `--method` selects `m`.
    pub fn runs(&self, m: &str) -> bool {
        self.method == m || self.method == "all"
    }
}

/// `device_info`.
#[derive(clap::Parser, Debug, Clone)]
pub struct DeviceInfo {
    /// Size of the timed n x n x n matmul (at least 1).
    #[arg(long, default_value_t = 512, value_parser = at_least_one)]
    pub n: usize,
}

/// Every example, by name.
pub const EXAMPLES: [&str; 19] = [
    "mlp_mnist",
    "lenet_mnist",
    "lstm_mnist",
    "vit_mnist",
    "char_lm",
    "vgg_cifar",
    "alexnet_cifar",
    "resnet_cifar",
    "autoencoder",
    "vae",
    "gan",
    "flow",
    "siamese",
    "dann",
    "style_transfer",
    "unsupervised",
    "topics",
    "manifold",
    "device_info",
];

const CIFAR_DATA: &str = "Directory of CIFAR-10's binary files, data_batch_1.bin .. \
                          data_batch_5.bin and test_batch.bin (default: $CINDER_DATA, then \
                          data/cifar-10-batches-bin)";

/// The command line of the example `name` (one of [`EXAMPLES`]): its struct's flags, its
/// description, `--out out/NAME` and its other defaults. Panics on another name (a
/// mistake in an example or a test, not in the user's input).
pub fn command(name: &str) -> Command {
    let (cmd, about) = match name {
        "mlp_mnist" => (
            Classifier::command(),
            "Trains an MLP (784-256-128-10, ReLU, dropout 0.2) on Fashion-MNIST.",
        ),
        "lenet_mnist" => (Classifier::command(), "Trains LeNet-5 on Fashion-MNIST."),
        "lstm_mnist" => (
            Classifier::command(),
            "Trains an LSTM that reads Fashion-MNIST images row by row (28 steps of 28 pixels).",
        ),
        "vit_mnist" => (
            Classifier::command(),
            "Trains a small Vision Transformer (7x7 patches, 4 layers, width 64, 4 heads) on \
             Fashion-MNIST and draws its attention maps.",
        ),
        "vgg_cifar" => (
            Classifier::command(),
            "Trains VGG-11 with batch norm on CIFAR-10 (random crops and flips).",
        ),
        "alexnet_cifar" => (
            Classifier::command(),
            "Trains AlexNet's 32x32 variant (torchvision's names and widths) on CIFAR-10 \
             (random crops and flips).",
        ),
        "resnet_cifar" => (
            Classifier::command(),
            "Trains ResNet-20 on CIFAR-10 (random crops and flips).",
        ),
        "char_lm" => (
            CharLm::command(),
            "Trains a character-level language model (LSTM or Transformer) on the fortunes \
             Debian ships; reports validation bits per character and prints samples.",
        ),
        "autoencoder" => (
            Autoencoder::command(),
            "Trains an autoencoder (MLP or convolutional; tied, denoising or sparse) on \
             Fashion-MNIST.",
        ),
        "vae" => (
            Vae::command(),
            "Trains a variational autoencoder on Fashion-MNIST.",
        ),
        "gan" => (Gan::command(), "Trains a GAN on Fashion-MNIST."),
        "flow" => (
            Flow::command(),
            "Trains a RealNVP normalizing flow (affine couplings, checkerboard and channel \
             masks, multi-scale) on dequantized Fashion-MNIST; reports test bits per \
             dimension, checks the inverse and draws samples at two temperatures.",
        ),
        "siamese" => (
            Siamese::command(),
            "Trains a Siamese network on Fashion-MNIST pairs (contrastive loss).",
        ),
        "dann" => (
            Dann::command(),
            "Domain adaptation by gradient reversal (DANN) from Fashion-MNIST to a shifted \
             copy (texture, background or inverted); reports target accuracy beside source-only \
             training.",
        ),
        "style_transfer" => (
            StyleTransfer::command(),
            "Neural style transfer with Gram matrices: optimizes an image's pixels to match \
             a content image's features and a style image's Gram matrices (torchvision \
             VGG-16 weights, or a VGG-11 trained here on Fashion-MNIST).",
        ),
        "unsupervised" => (
            Unsupervised::command(),
            "PCA, k-means, a Gaussian mixture, probabilistic PCA, FastICA and NMF on \
             Fashion-MNIST.",
        ),
        "topics" => (
            Topics::command(),
            "Topic models on the fortunes Debian ships: pLSA by EM and LDA by batch \
             variational Bayes; prints each topic's top words and the held-out perplexity.",
        ),
        "manifold" => (
            Manifold::command(),
            "Manifold learning on Fashion-MNIST: exact t-SNE (after PCA), Isomap and LLE \
             embeddings as scatter plots coloured by class, with KL divergence, \
             trustworthiness and reconstruction errors.",
        ),
        "device_info" => (
            DeviceInfo::command(),
            "Prints the adapter Cinder picked, its limits, and a matmul check with GFLOP/s.",
        ),
        other => panic!("no example is called {other:?} (one of {EXAMPLES:?})"),
    };
    let mut cmd = cmd
        .name(name.to_string())
        .bin_name(name.to_string())
        .about(about);
    let has = |cmd: &Command, id: &str| cmd.get_arguments().any(|a| a.get_id() == id);
    if has(&cmd, "out") {
        let out = format!("out/{name}");
        cmd = cmd.mut_arg("out", |a| a.default_value(out));
    }
    cmd = match name {
        "lenet_mnist" => cmd.mut_arg("lr", |a| a.default_value("2e-3")),
        "gan" => cmd.mut_arg("lr", |a| a.default_value("5e-4")),
        // the paper's SGD with momentum at 0.01
        "dann" => cmd
            .mut_arg("lr", |a| a.default_value("1e-2"))
            .mut_arg("optimizer", |a| a.default_value("sgd")),
        "char_lm" => cmd
            .mut_arg("lr", |a| a.default_value("2e-3"))
            .mut_arg("batch_size", |a| a.default_value("32"))
            .mut_arg("data", |a| {
                a.help(
                    "Directory of fortune files (default: $CINDER_TEXT, then \
                     /usr/share/games/fortunes from Debian's fortunes package)",
                )
            })
            .mut_arg("limit", |a| {
                a.help("Use only the first N characters of the training text (N at least 1)")
            }),
        "topics" => cmd
            .mut_arg("data", |a| {
                a.help(
                    "Directory of fortune files (default: $CINDER_TEXT, then \
                     /usr/share/games/fortunes from Debian's fortunes package)",
                )
            })
            .mut_arg("limit", |a| {
                a.help("Use at most N fortunes, every (total / N)-th one (N at least 1)")
            }),
        "vgg_cifar" | "alexnet_cifar" | "resnet_cifar" => {
            cmd.mut_arg("data", |a| a.help(CIFAR_DATA))
        }
        "manifold" => cmd.mut_arg("limit", |a| {
            a.default_value(MANIFOLD_LIMIT.to_string()).help(
                "Use the first N training images (at least 2; at most 5792 on lavapipe: the \
                 exact methods hold n x n matrices, each in one 128 MiB binding)",
            )
        }),
        "unsupervised" => cmd.mut_arg("limit", |a| {
            a.default_value(UNSUPERVISED_LIMIT.to_string()).help(
                "Use the first N training images (at least 1; all 60,000 work: the data are \
                 held in row blocks of one storage binding each)",
            )
        }),
        _ => cmd,
    };
    cmd
}

/// The flags of a command, sorted (clap's ids: the field names).
fn ids(cmd: &Command) -> Vec<String> {
    let mut v: Vec<String> = cmd
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect();
    v.sort();
    v
}

/// Reads `T` from `matches` of [`command`]`(name)`. Panics when `T` is not the struct
/// [`command`] gives `name` (a mistake in the example, caught on its first run).
fn from_matches<T: FromArgMatches + CommandFactory>(
    name: &str,
    matches: &ArgMatches,
) -> Result<T, clap::Error> {
    assert_eq!(
        ids(&command(name)),
        ids(&T::command()),
        "{name} parses its command line into another struct than cli::command gives it"
    );
    T::from_arg_matches(matches)
}

/// The command line of the example `name`, parsed into its struct `T`; exits with clap's
/// message and status 2 on a bad or unknown flag, after printing `--help`.
pub fn parse<T: FromArgMatches + CommandFactory>(name: &str) -> T {
    let mut cmd = command(name);
    let matches = cmd.get_matches_mut();
    from_matches(name, &matches).unwrap_or_else(|e| e.format(&mut cmd).exit())
}

/// [`parse`] of the arguments `args` (without the program name), returning clap's error.
pub fn try_parse<T: FromArgMatches + CommandFactory>(
    name: &str,
    args: &[&str],
) -> Result<T, clap::Error> {
    let mut cmd = command(name);
    let matches =
        cmd.try_get_matches_from_mut(std::iter::once(name).chain(args.iter().copied()))?;
    from_matches(name, &matches)
}

/// Parses a count that must be at least 1 (`--epochs`, `--limit`, `--batch-size`, ...): 0
/// would train or measure nothing and report 0.0 as if it had been measured.
fn at_least_one(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|e| format!("`{s}` is not a whole number: {e}"))?;
    if n == 0 {
        return Err("must be at least 1 (0 would train or measure nothing)".into());
    }
    Ok(n)
}

/// Parses a count that must be at least 2 (`--context`: a window of one character predicts
/// nothing from anything).
fn at_least_two(s: &str) -> Result<usize, String> {
    let n = at_least_one(s)?;
    if n < 2 {
        return Err("must be at least 2".into());
    }
    Ok(n)
}

/// Parses a size that must be at least 16 (`style_transfer --size`: smaller images leave
/// the deeper feature maps empty after the pools).
fn at_least_sixteen(s: &str) -> Result<usize, String> {
    let n = at_least_one(s)?;
    if n < 16 {
        return Err("must be at least 16".into());
    }
    Ok(n)
}

/// Parses `--val-fraction`: a number strictly between 0 and 1 (0 leaves no validation
/// images to select the best model on, 1 no training images).
fn open_fraction(s: &str) -> Result<f32, String> {
    let f: f32 = s
        .parse()
        .map_err(|e| format!("`{s}` is not a number: {e}"))?;
    if !(f > 0.0 && f < 1.0) {
        return Err(
            "must be strictly between 0 and 1 (0 leaves no validation images, 1 no training \
             images)"
                .into(),
        );
    }
    Ok(f)
}

/// Parses a finite number, at least 0 (`--lr`, `--noise`, `--sparsity`).
/// Parses a finite value above 0 (`manifold --perplexity`).
fn positive_f32(s: &str) -> Result<f32, String> {
    let v = non_negative(s)?;
    if v == 0.0 {
        return Err("must be above 0".into());
    }
    Ok(v)
}

fn non_negative(s: &str) -> Result<f32, String> {
    let f: f32 = s
        .parse()
        .map_err(|e| format!("`{s}` is not a number: {e}"))?;
    if !(f.is_finite() && f >= 0.0) {
        return Err("must be a finite number, at least 0".into());
    }
    Ok(f)
}

/// Parses a number in [0, 1] (`dann --contrast`).
fn unit_interval(s: &str) -> Result<f32, String> {
    let f: f32 = s
        .parse()
        .map_err(|e| format!("`{s}` is not a number: {e}"))?;
    if !(0.0..=1.0).contains(&f) {
        return Err("must be in [0, 1]".into());
    }
    Ok(f)
}

/// Parses `--mask`: a probability in [0, 1) (1 would zero every pixel).
fn probability(s: &str) -> Result<f32, String> {
    let f: f32 = s
        .parse()
        .map_err(|e| format!("`{s}` is not a number: {e}"))?;
    if !(0.0..1.0).contains(&f) {
        return Err("must be at least 0 and below 1 (1 would zero every pixel)".into());
    }
    Ok(f)
}
