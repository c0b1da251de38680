"""Real tables as users have them: CSV quirks (byte-order mark, missing cells, text), constant columns,
column types (integer, count, log, logit) modelled inside the flow with every Jacobian counted, and
the data read once per training run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from realnvp import load
from realnvp.bijectors.columns import ColumnTransform
from realnvp.cli import main
from realnvp.config import DataConfig
from realnvp.data.columns import ColumnType, detect_type, resolve_types
from realnvp.data.tables import read_source
from realnvp.data.vectors import read_table
from realnvp.errors import UserError
from realnvp.evaluation.metrics import row_log_likelihood
from realnvp.models import build_vector_flow


def test_a_byte_order_mark_without_header_keeps_the_first_row(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf1.5,2\n3,4\n")
    table = read_table(path)
    assert table.values.tolist() == [[1.5, 2.0], [3.0, 4.0]] and not table.has_header


def test_missing_cells_are_refused_naming_line_and_column_or_dropped(tmp_path):
    path = tmp_path / "na.csv"
    path.write_text("age,income\n1,2\n3,NA\n5,\n7,8\n")
    with pytest.raises(UserError, match=r"2 rows have missing cells, first at line 3, column 'income'"):
        read_table(path)
    table = read_table(path, missing="drop")
    assert table.values.tolist() == [[1.0, 2.0], [7.0, 8.0]] and table.dropped == 2


def test_a_text_cell_names_its_line_and_column(tmp_path):
    path = tmp_path / "text.csv"
    path.write_text("a,species\n1,2\n3,setosa\n")
    with pytest.raises(UserError, match=r"line 3, column 'species' holds 'setosa', not a number"):
        read_table(path)


def test_one_row_is_too_few_to_split(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match="1 rows are too few"):
        read_source(DataConfig(name="file", path=str(path)))


def test_an_npy_header_too_large_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.npy"
    with path.open("wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False,
                                                 "shape": (99_999_999_999, 3)})
    with pytest.raises(UserError, match="cells is more than"):
        read_table(path)


def test_constant_columns_are_named_then_refused_or_dropped(tmp_path):
    path = tmp_path / "c.csv"
    rng = np.random.default_rng(0)
    rows = np.c_[rng.normal(size=50), np.full(50, 7.0), rng.normal(size=50), 1e30 + rng.normal(size=50)]
    np.savetxt(path, rows, delimiter=",", header="a,flat,b,offset", comments="")
    with pytest.raises(UserError, match="columns 'flat', 'offset' are constant"):
        read_source(DataConfig(name="file", path=str(path)))
    source = read_source(DataConfig(name="file", path=str(path), constant="drop"))
    assert source.names == ("a", "b") and source.dropped_columns == ("flat", "offset")


def test_a_column_of_tiny_spread_is_not_constant():
    rng = np.random.default_rng(0)
    rows = np.c_[rng.normal(size=200), 1e-30 * rng.normal(size=200)]
    assert resolve_types("auto", rows, ("a", "b")) == (ColumnType("real"), ColumnType("real"))


def test_column_types_are_detected_from_the_data():
    rng = np.random.default_rng(1)
    assert detect_type(rng.lognormal(1.0, 1.0, 2000)).kind == "log"
    assert detect_type(rng.normal(5.0, 1.0, 2000)).kind == "real"
    assert detect_type(rng.beta(0.5, 0.5, 2000)).kind == "logit"
    counts = rng.negative_binomial(1, 0.1, 2000).astype(float)  # skewed counts with zeros
    assert detect_type(counts) == ColumnType("count", 1.0)
    assert detect_type(rng.integers(-5, 5, 2000).astype(float)) == ColumnType("integer", 1.0)
    assert detect_type(np.round(rng.normal(size=2000), 2)) == ColumnType("integer", 0.01)


def test_given_types_override_and_are_checked_against_the_data():
    x = np.array([[1.0, -2.0], [2.0, 3.0], [4.0, 1.5]])
    assert resolve_types("b=real", x, ("a", "b")) == (detect_type(x[:, 0]), ColumnType("real"))
    assert resolve_types("real,real", x, ("a", "b")) == (ColumnType("real"),) * 2
    with pytest.raises(UserError, match="column 'b' is typed log but holds -2"):
        resolve_types("a=real,b=log", x, ("a", "b"))
    with pytest.raises(UserError, match="no column named 'c'"):
        resolve_types("c=real", x, ("a", "b"))


def test_column_transform_log_det_is_the_autograd_jacobian_and_inverts():
    layer = ColumnTransform(("log", "logit", "none")).double()
    x = torch.tensor([[2.5, 0.2, -1.0], [0.1, 0.9, 3.0]], dtype=torch.float64)
    z, log_det = layer(x)
    for row, expected in zip(x, log_det):
        jacobian = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], row)
        assert torch.allclose(torch.linalg.slogdet(jacobian)[1], expected)
    back, inverse_log_det = layer.inverse(z)
    assert torch.allclose(back, x) and torch.allclose(log_det + inverse_log_det, torch.zeros(2, dtype=torch.float64))
    assert layer(torch.tensor([[-1.0, 0.5, 0.0]], dtype=torch.float64))[1].item() == -math.inf


def test_the_discrete_bound_integrates_the_density_over_each_cell():
    """On a standard normal flow a lattice-1 column's bound is E_u log N(k + u), known in closed form."""
    flow = build_vector_flow(dim=2, n_couplings=2, hidden=(4,))
    flow.set_lattice([1.0, 0.0])
    x = torch.tensor([[2.0, 0.0]])
    exact = -0.5 * math.log(2 * math.pi) - 0.5 * (4 + 2 + 1 / 3) - 0.5 * math.log(2 * math.pi)
    assert abs(row_log_likelihood(flow, x, draws=4000).item() - exact) < 0.02
    samples = flow.sample(500)
    assert torch.equal(samples[:, 0], samples[:, 0].floor()) and not torch.equal(samples[:, 1], samples[:, 1].floor())


def mixed_table(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    return np.c_[a, np.exp(0.5 * a + 0.3 * rng.normal(size=n)), rng.negative_binomial(1, 1 / (1 + np.exp(1 + a))),
                 np.round(rng.normal(size=n) + a, 1)]


def test_a_mixed_table_trains_with_its_types_and_samples_respect_them(tmp_path, capsys):
    path = tmp_path / "mixed.csv"
    np.savetxt(path, mixed_table(600, 0), delimiter=",", header="a,positive,count,tenths", comments="",
               fmt=["%.6f", "%.6f", "%d", "%.1f"])
    main(["train", "--data", str(path), "--out", str(tmp_path / "run"), "--steps", "200", "--no-pictures",
          "--set", "model.hidden=16,16"])
    err = capsys.readouterr().err
    assert "columns: a real, positive log, count count, tenths integer@0.1" in err
    metrics = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    assert math.isfinite(metrics["test_nll_nats"]) and "discrete_columns" in metrics
    assert metrics["inverse_max_abs_error"] < 1e-3
    samples = load(tmp_path / "run").sample(2000).double().numpy()
    assert (samples[:, 1] > 0).all() and (samples[:, 2] >= 0).all()
    assert np.array_equal(samples[:, 2], np.round(samples[:, 2]))
    assert np.allclose(samples[:, 3] * 10, np.round(samples[:, 3] * 10), atol=1e-3)


def independent_gaussian_nll(train: np.ndarray, test: np.ndarray) -> float:
    """The ML Gaussian from its textbook formula in float64, on the exact covariance."""
    mean, cov = train.mean(0), np.cov(train.T, bias=True)
    d = test - mean
    quad = np.einsum("ij,ij->i", d, np.linalg.solve(cov, d.T).T)
    return float(np.mean(0.5 * quad + 0.5 * np.linalg.slogdet(cov)[1] + 0.5 * len(mean) * math.log(2 * math.pi)))


def test_evaluate_gaussian_is_exact_across_column_scales(tmp_path):
    rng = np.random.default_rng(3)
    mixing = np.array([[1.0, 0.0, 0.0], [0.5, 1.0, 0.0], [0.3, -0.4, 1.0]])
    rows = (rng.normal(size=(800, 3)) @ mixing.T) * np.array([1e4, 1e-2, 1.0])  # variances 1e8, 1e-4, 1
    np.save(tmp_path / "train.npy", rows[:600])
    np.save(tmp_path / "test.npy", rows[600:])
    main(["train", "--data", str(tmp_path / "train.npy"), "--test-data", str(tmp_path / "test.npy"), "--out",
          str(tmp_path / "run"), "--steps", "0", "--no-pictures", "--quiet"])
    metrics = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    expected = independent_gaussian_nll(rows[:600], rows[600:])
    assert abs(metrics["baseline_gaussian_test_nll_nats"] - expected) < 1e-6
    assert abs(metrics["test_nll_nats"] - expected) < 1e-3  # the untrained flow is that Gaussian (float32)


def test_few_rows_per_column_start_from_the_shrinkage_gaussian(tmp_path):
    rng = np.random.default_rng(4)
    factor = np.tril(rng.normal(size=(40, 40)) / 8) + np.eye(40)
    rows = rng.normal(size=(130, 40)) @ factor.T
    np.save(tmp_path / "t.npy", rows[:100])
    np.save(tmp_path / "held.npy", rows[100:])
    main(["train", "--data", str(tmp_path / "t.npy"), "--test-data", str(tmp_path / "held.npy"), "--out",
          str(tmp_path / "run"), "--steps", "0", "--no-pictures", "--quiet", "--set", "data.val_fraction=0.3"])
    metrics = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    assert metrics["baseline_shrinkage_test_nll_nats"] < metrics["baseline_gaussian_test_nll_nats"] - 5
    assert metrics["test_nll_nats"] < metrics["baseline_gaussian_test_nll_nats"] - 5  # started from shrinkage
    assert metrics["started_from"] == "the Ledoit-Wolf shrinkage Gaussian"


def test_student_t_is_the_exact_multivariate_t():
    from scipy.stats import multivariate_t

    from realnvp.distributions import StudentT
    chol = torch.tensor([[2.0, 0.0], [0.5, 1.5]])
    t = StudentT(torch.tensor([1.0, -1.0]), chol, df=3.0)
    x = torch.randn(6, 2) * 5
    expected = multivariate_t([1.0, -1.0], (chol @ chol.T).numpy(), df=3.0).logpdf(x.numpy())
    assert np.allclose(t.log_prob(x).numpy(), expected, atol=1e-10)


def test_a_far_held_out_row_costs_a_bounded_amount(tmp_path):
    """The issue's case: rows off the data's manifold cost thousands of nats under a sharp flow; with the
    defensive Student-t share no row costs more than -log w - log t(x), and ordinary rows lose almost nothing."""
    rng = np.random.default_rng(5)
    a = rng.normal(size=3000)
    rows = np.c_[a, a + 0.01 * rng.normal(size=3000), rng.normal(size=3000)]  # a thin ridge
    np.save(tmp_path / "train.npy", rows[:2500])
    held = rows[2500:].copy()
    held[:3, 1] = held[:3, 0] + 5.0  # three rows far off the ridge
    np.save(tmp_path / "test.npy", held)
    main(["train", "--data", str(tmp_path / "train.npy"), "--test-data", str(tmp_path / "test.npy"), "--out",
          str(tmp_path / "run"), "--steps", "300", "--no-pictures", "--quiet"])
    flow = load(tmp_path / "run")
    weight = float(flow.defensive_weight)
    assert 1e-3 <= weight <= 0.1
    with torch.no_grad():
        mixed = -flow.log_prob(torch.from_numpy(held).float()).double()
        alone = -flow.log_prob(torch.from_numpy(held).float(), defensive=False).double()
        bound = -math.log(weight) - flow.defensive.log_prob(torch.from_numpy(held).float())
    assert (mixed <= bound + 1e-4).all() and alone[:3].min() > 1000 > mixed[:3].max()
    assert (mixed[3:] - alone[3:]).max() <= -math.log1p(-weight) + 1e-5


def test_score_gives_evaluate_its_discrete_bound_row_by_row(tmp_path, capsys):
    """A table on a 0.01 lattice with exact zeros (fgl's layout): score's rows average to evaluate's NLL."""
    rng = np.random.default_rng(6)
    rows = np.round(np.c_[rng.gamma(0.5, 1.0, 400) * (rng.random(400) < 0.7), rng.normal(size=400)], 2)
    np.savetxt(tmp_path / "t.csv", rows, delimiter=",", header="zeros,b", comments="", fmt="%.2f")
    main(["train", "--data", str(tmp_path / "t.csv"), "--out", str(tmp_path / "run"), "--steps", "100",
          "--no-pictures", "--quiet"])
    metrics = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    from realnvp.data import load_splits
    from realnvp.rundir import RunDir
    test = load_splits(RunDir(tmp_path / "run").config().data).test
    np.save(tmp_path / "test.npy", test)
    main(["score", str(tmp_path / "run"), str(tmp_path / "test.npy"), "-o", str(tmp_path / "s.csv"), "--quiet"])
    scores = np.loadtxt(tmp_path / "s.csv", delimiter=",", skiprows=1)[:, 1]
    assert np.isfinite(scores).all()
    assert -scores.mean() == pytest.approx(metrics["test_nll_nats"], abs=1e-4)


def test_sample_writes_a_csv_with_the_header_and_one_file_per_temperature(tmp_path, capsys):
    path = tmp_path / "mixed.csv"
    np.savetxt(path, mixed_table(300, 1), delimiter=",", header="a,positive,count,tenths", comments="",
               fmt=["%.6f", "%.6f", "%d", "%.1f"])
    main(["train", "--data", str(path), "--out", str(tmp_path / "run"), "--steps", "30", "--no-pictures",
          "--quiet", "--set", "model.hidden=8"])
    assert main(["sample", str(tmp_path / "run"), "-n", "50", "-o", str(tmp_path / "s.csv"), "--temperature",
                 "0.5", "--temperature", "1", "--quiet"]) == 0
    for name in ("s_t0.5.csv", "s_t1.csv"):
        lines = (tmp_path / name).read_text().splitlines()
        assert lines[0] == "a,positive,count,tenths" and len(lines) == 51
        values = np.loadtxt(tmp_path / name, delimiter=",", skiprows=1)
        assert np.array_equal(values[:, 2], np.round(values[:, 2]))


def test_a_tie_with_the_gaussian_is_called_a_tie():
    from realnvp.cli.evaluate import verdict
    assert verdict({"test_nll_nats": 19.02, "baseline_gaussian_test_nll_nats": 19.02}).startswith("the flow ties")
    assert "WORSE" in verdict({"test_nll_nats": 19.1, "baseline_gaussian_test_nll_nats": 19.02})


def test_a_table_wider_than_realnvp_models_is_refused_from_its_first_line(tmp_path, capsys):
    path = tmp_path / "wide.csv"
    path.write_text("\n".join(",".join(["1.5"] * 20_000) for _ in range(12)) + "\n")
    assert main(["train", "--data", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "20000 columns; realnvp models at most 10000" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_altered_run_files_are_skipped_not_a_traceback(tmp_path, capsys):
    """Issue 'Reliability round 3': a metrics line whose step is text, deeply nested JSON in evaluation.json
    and a TOML of 5,000 nested arrays end in a result or one line, never a traceback."""
    np.save(tmp_path / "t.npy", mixed_table(200, 2)[:, :2])
    run = tmp_path / "run"
    main(["train", "--data", str(tmp_path / "t.npy"), "--out", str(run), "--steps", "20", "--no-pictures", "--quiet"])
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": "x"}\n' + "[" * 5000 + "]" * 5000 + "\n")
    (run / "evaluation.json").write_text('{"test_nll_nats": "abc"}')
    assert main(["train", "--data", str(tmp_path / "t.npy"), "--out", str(run), "--steps", "30", "--no-pictures",
                 "--quiet", "--resume"]) == 0
    assert main(["runs", str(tmp_path)]) == 0
    (tmp_path / "deep.toml").write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    capsys.readouterr()
    assert main(["train", str(tmp_path / "deep.toml"), "--out", str(tmp_path / "new"), "--quiet"]) == 2
    expected = f"realnvp: error: {tmp_path / 'deep.toml'}: not valid TOML (nested too deeply)"
    assert capsys.readouterr().err.strip() == expected


@pytest.mark.parametrize("content, message", [
    ("a,b\n1,2\n", "1 rows are too few to split into training, validation and test (need at least 10)"),
    ("a,b\n1,2\n3,\n" + "1,1\n" * 20, "1 rows have missing cells, first at line 3, column 'b'"),
])
def test_the_issue_cases_end_in_one_line_from_the_command(tmp_path, capsys, content, message):
    path = tmp_path / "t.csv"
    path.write_text(content)
    assert main(["train", "--data", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and not (tmp_path / "run").exists()


def test_a_csv_with_a_byte_order_mark_and_no_header_trains_on_every_row(tmp_path, capsys):
    rows = np.random.default_rng(7).normal(size=(50, 2))
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + "".join(f"{a:.6f},{b:.6f}\n" for a, b in rows).encode())
    main(["train", "--data", str(tmp_path / "bom.csv"), "--out", str(tmp_path / "run"), "--steps", "5",
          "--no-pictures", "--quiet", "--json"])
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n_test"] == 10 and metrics["n_train"] == 32  # 50 rows: 10 test, 8 validation, 32 training


def test_collinear_columns_are_named_when_training(tmp_path, capsys):
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=300), rng.normal(size=300)
    np.savetxt(tmp_path / "t.csv", np.c_[a, b, a + b], delimiter=",", header="a,b,total", comments="", fmt="%.6f")
    main(["train", "--data", str(tmp_path / "t.csv"), "--out", str(tmp_path / "run"), "--steps", "5",
          "--no-pictures"])
    assert "column(s) 'total' are (almost) linear combinations of earlier columns" in capsys.readouterr().err
