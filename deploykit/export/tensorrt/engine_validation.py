"""Numerical validation of a freshly built engine against eager PyTorch (or ONNX Runtime on the source ONNX)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

from deploykit.backends.tensorrt import runtime as _rt
from deploykit.backends.tensorrt.executor import EngineExecutor, ProfileShape
from deploykit.errors import ValidationError
from deploykit.export.tensorrt.onnx_info import OnnxInfo
from deploykit.export.tensorrt.precision import check_precision


def validation_tolerance(precision: str, *, tf32: bool = False) -> Any:
    """The :class:`~deploykit.export.validate.Tolerance` an engine of ``precision`` is validated with: the same
    table as the ONNX export (scale-relative: ``max|out - ref| <= atol + rtol * max|ref|``).

    An fp32 engine is true fp32 (TF32 flag cleared) and judged at the fp32 tolerance against a true-fp32
    reference. Built with ``tf32=True`` its fp32 layers round their inputs to TF32's 10 mantissa bits, so it is
    judged at the ``tf32`` precision's tolerance (TF32 alone costs 5e-4 to 1e-3 of the output scale on the zoo).
    """
    from deploykit.export.validate import tolerance_for
    from deploykit.precision import Precision

    p = check_precision(precision)
    if tf32 and p == "fp32":
        return Precision.TF32.tolerance
    return tolerance_for(p)


def _reference_fn(info: OnnxInfo, reference_model: Any, device: Any) -> tuple[Callable[..., list[Any]], str]:
    """The reference the engine is compared with: the eager module when given, else ONNX Runtime on the ONNX.

    The ONNX exporter folds BatchNorm into Conv weights and models are randomly initialised, so a module rebuilt
    from the registry would not hold the exported weights: eager validation needs the very module that was
    exported (``reference_model=``; the CLI has it in hand right after ``export_onnx``).
    """
    import torch

    from deploykit.backends.math_mode import true_fp32

    if reference_model is not None:
        model = copy.deepcopy(reference_model).to(device=device, dtype=torch.float32).eval()

        def eager(*xs: Any) -> list[Any]:
            # True fp32 (TF32 off): torch 2.14's cuDNN convolutions default to TF32, 5-10x the fp32 tolerance.
            with torch.inference_mode(), true_fp32():
                out = model(*[x.to(torch.float32) for x in xs])
            outs = list(out) if isinstance(out, (tuple, list)) else [out]
            return [o.float() for o in outs]

        return eager, "eager-pytorch"

    from deploykit.backends.ort import (
        CPU_PROVIDER,
        CUDA_PROVIDER,
        cuda_provider_available,
        import_onnxruntime,
        make_session,
    )
    from deploykit.errors import BackendUnavailable

    try:
        import_onnxruntime()
        on_cuda = torch.cuda.is_available() and cuda_provider_available()
    except BackendUnavailable:
        raise ValidationError(
            "no reference to validate against: pass reference_model= (the exported nn.Module) or install onnxruntime"
        ) from None
    # make_session: the provider checked to be the one asked for; on CUDA true fp32 (use_tf32=0).
    sess = make_session(info.path, torch.device("cuda" if on_cuda else "cpu"))
    provider = CUDA_PROVIDER if on_cuda else CPU_PROVIDER
    names = [i.name for i in sess.get_inputs()]
    np_types = {i.name: i.type for i in sess.get_inputs()}

    def onnxrt(*xs: Any) -> list[Any]:
        feed = {}
        for n, x in zip(names, xs, strict=True):
            arr = x.detach().to("cpu", torch.float32).numpy()
            feed[n] = arr.astype("float16") if np_types[n] == "tensor(float16)" else arr
        try:
            outs = sess.run(None, feed)
        except Exception as exc:
            raise ValidationError(f"ONNX Runtime could not run the reference: {exc}") from None
        return [torch.from_numpy(o.astype("float32")) for o in outs]

    return onnxrt, f"onnxruntime:{provider}"


def validate_engine(
    executor: EngineExecutor,
    info: OnnxInfo,
    precision: str,
    *,
    reference_model: Any = None,
    batches: Sequence[int] | None = None,
    calibration: Sequence[Any] | None = None,
    seed: int = 0,
    tf32: bool = False,
) -> dict[str, Any]:
    """Run the engine and the reference on the same inputs (each profile batch, fixed seed) and compare.

    Inputs are standard-normal (or samples of ``calibration``, real inputs, when given); at least three samples
    (a batch-1 engine runs three batches). The verdict is :func:`deploykit.metrics.judge_outputs`'s on all samples
    (passed / inconclusive / failed, as for the ONNX export). Returns the record for the manifest (``status``,
    ``passed`` = True / None for inconclusive, ``reason``, ``advice``); raises :class:`ValidationError` with the
    reason when the verdict is failed.
    """
    import torch

    from deploykit.backends.math_mode import fp32_math_record, true_fp32
    from deploykit.export.validate import compare_outputs
    from deploykit.metrics import judge_outputs

    tol = validation_tolerance(precision, tf32=tf32)
    with true_fp32():  # what the eager reference runs in
        math_record = {**fp32_math_record(executor.device), "engine": "tf32" if tf32 else "ieee"}
    reference, ref_name = _reference_fn(info, reference_model, executor.device)
    first = executor.inputs[0]
    profile = first.profile or ProfileShape(first.shape, first.shape, first.shape)
    sizes = sorted(set(batches or (profile.min[0], profile.opt[0], profile.max[0])))
    # at least three samples: one cannot show how the output depends on the input (an inconclusive check)
    sizes = sizes * max(1, -(-3 // sum(sizes)))
    gen = torch.Generator(device="cpu").manual_seed(seed)
    pool = None
    if calibration is not None and len(executor.inputs) == 1 and len(calibration) > 0:
        import numpy as np

        pool = torch.from_numpy(np.concatenate(list(calibration), axis=0)).float()
    runs = []
    got_all: dict[str, list[Any]] = {}
    ref_all: dict[str, list[Any]] = {}
    offset = 0
    for b in sizes:
        xs = []
        for spec in executor.inputs:
            p = spec.profile.opt if spec.profile else spec.shape
            dynamic = spec.profile is not None and spec.profile.min[0] != spec.profile.max[0]
            shape = (b, *p[1:]) if dynamic or spec is first else tuple(p)
            if pool is not None:  # successive samples of the pool (wrapping around), not the same ones every batch
                idx = torch.arange(offset, offset + shape[0]) % pool.shape[0]
                xs.append(pool[idx])
            else:
                xs.append(torch.randn(shape, generator=gen, dtype=torch.float32))
        engine_in = [x.to(executor.device, spec.dtype).contiguous() for x, spec in zip(xs, executor.inputs, strict=True)]
        outs = executor.run(engine_in)
        _rt.current_stream(executor.device).synchronize()
        # The reference sees what the engine saw: inputs rounded to the engine's input dtype, then fp32.
        refs = reference(*[x.to(torch.float32).to(executor.device) for x in engine_in])
        if len(refs) != len(outs):
            raise ValidationError(f"the engine has {len(outs)} outputs and the reference {len(refs)}")
        offset += b
        for spec, out, ref in zip(executor.outputs, outs, refs, strict=True):
            cmp = compare_outputs(out, ref, tol)
            runs.append({"batch": b, "output": spec.name, **cmp})
            got_all.setdefault(spec.name, []).append(out.detach().float().cpu())
            ref_all.setdefault(spec.name, []).append(ref.detach().float().cpu())
    verdict = judge_outputs({k: torch.cat(v) for k, v in got_all.items()},
                            {k: torch.cat(v) for k, v in ref_all.items()}, tol, precision=precision)
    result = {
        "status": verdict.status,
        "reason": verdict.reason,
        "advice": verdict.advice,
        "reference": ref_name,
        "precision": precision,
        "tolerance": tol.to_dict(),
        "fp32_math": math_record,
        "seed": seed,
        "inputs": "calibration samples" if calibration is not None else "standard normal",
        "batches": sizes,
        "max_abs_error": max(r["max_abs_error"] for r in runs),
        "max_rel_error": max(r["max_rel_error"] for r in runs),
        "passed": True if verdict.passed else (False if verdict.failed else None),
        "verdict": verdict.to_dict(),
        "runs": runs,
    }
    if verdict.failed:
        raise ValidationError(
            f"the {precision} engine disagrees with the reference ({ref_name}): {verdict.reason} (rtol "
            f"{tol.rtol:g} of the output scale, {sum(sizes)} samples in batches of {', '.join(map(str, sizes))}); "
            "the engine was not written"
        )
    return result
