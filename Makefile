# Two entry points for newcomers: `make run` and `make test`. Both install LibTorch
# (PyPI's torch wheel, into a cached venv outside the repo) on first use.
LIBTORCH := $(shell scripts/setup-libtorch.sh)
ifeq ($(LIBTORCH),)
$(error LibTorch setup failed: see the messages above)
endif
export LIBTORCH

.PHONY: run test build bench

run:
	cargo run --release --

# The DICOM tests write their files with pydicom: setup-test-python.sh installs it (once).
test:
	scripts/setup-test-python.sh >/dev/null
	cargo test

build:
	cargo build --release

bench:
	cargo bench
