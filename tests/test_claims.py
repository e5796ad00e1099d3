"""Claim checks: Welch and bootstrap intervals against hand-computed values, the verdict rule,
the claim-level verdict, the report and the claim definitions of the four papers."""

from __future__ import annotations

import functools
import json
import math

import pytest
from badinput import expect_refusal

from cvae.experiments import claims as K
from cvae.experiments.claim_check import claim_jobs, paper_claims, write_claim_report
from cvae.experiments.papers import CLAIMS, PAPERS

ARMS = (K.Arm("VAE", "vae-mnist-paper"), K.Arm("CVAE", "cvae-mnist-paper"))
BUDGET = {"cpu": K.ClaimBudget({"train.epochs": 1}, "one epoch")}


def _claim(metric: K.ClaimMetric) -> K.Claim:
    return K.Claim("cvae-paper", "toy", "CVAE beats VAE", ARMS, (("CVAE", "VAE"),), (metric,),
                   (0, 1, 2), BUDGET)  # fmt: skip


ACC = K.ClaimMetric(
    "logreg_paper",
    unit="accuracy",
    paper={"VAE": "91.80%", "CVAE": "93.05%"},
    paper_values={"VAE": 0.918, "CVAE": 0.9305},
)


def test_welch_interval_matches_the_hand_computation():
    """t = [1, 2, 3], c = [2, 3, 4]: both variances 1, se = sqrt(1/3 + 1/3) = 0.816497,
    df = (2/3)^2 / (2 (1/3)^2 / 2) = 4, t(0.975, 4) = 2.776445 (table): -1 +- 2.266958."""
    diff, ci, se, df = K.welch_interval([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])
    assert diff == pytest.approx(-1.0)
    assert se == pytest.approx(math.sqrt(2 / 3))
    assert df == pytest.approx(4.0)
    assert (ci.low, ci.high) == pytest.approx((-3.266958, 1.266958), abs=1e-5)


def test_welch_degrees_of_freedom_with_unequal_variances():
    """s_t^2/n = 0.0004/3, s_c^2/n = 0.0007/3: df = (0.0011/3)^2 / ((0.0004/3)^2/2 +
    (0.0007/3)^2/2) = 2 * 121 / 65 = 3.7231, between t(3) and t(4)."""
    diff, ci, se, df = K.welch_interval([0.90, 0.92, 0.94], [0.80, 0.81, 0.85])
    assert diff == pytest.approx(0.10)
    assert se == pytest.approx(math.sqrt(0.0011 / 3))
    assert df == pytest.approx(242 / 65)
    half = (ci.high - ci.low) / 2
    assert 2.776445 * se < half < 3.182446 * se  # t(0.975, 4) < t(0.975, 3.72) < t(0.975, 3)
    assert K.student_t_quantile(0.975, 1e9) == pytest.approx(1.959964, abs=1e-6)


def test_welch_needs_two_values_and_handles_zero_spread():
    with pytest.raises(ValueError, match="two values"):
        K.welch_interval([1.0], [1.0, 2.0])
    diff, ci, se, _ = K.welch_interval([2.0, 2.0], [1.0, 1.0])
    assert (diff, ci.low, ci.high, se) == (1.0, 1.0, 1.0, 0.0)


def test_bootstrap_interval_is_seeded_and_brackets_the_difference():
    t, c = [0.90, 0.92, 0.94], [0.85, 0.86, 0.90]
    a, b = K.bootstrap_interval(t, c, seed=3), K.bootstrap_interval(t, c, seed=3)
    assert a == b
    assert a.low <= 0.05 <= a.high
    # every resampled difference lies between the extreme possible ones
    assert min(t) - max(c) <= a.low and a.high <= max(t) - min(c)
    assert K.bootstrap_interval([1.0, 1.0], [0.0, 0.0]) == K.Interval(1.0, 1.0, a.method)


@pytest.mark.parametrize(
    ("low", "high", "verdict"),
    [
        (0.01, 0.03, K.SUPPORTED),
        (-0.03, -0.01, K.CONTRADICTED),
        (-0.01, 0.03, K.INCONCLUSIVE),
        (0.0, 0.03, K.INCONCLUSIVE),
    ],
)
def test_verdict_rule(low, high, verdict):
    assert K.claim_verdict(K.Interval(low, high, "x")) == verdict


def _values(vae, cvae, metric="logreg_paper"):
    return {metric: {"VAE": dict(enumerate(vae)), "CVAE": dict(enumerate(cvae))}}


def test_judge_claim_supported_and_paper_gain():
    result = K.judge_claim(_claim(ACC), "cpu", _values([0.80, 0.81, 0.85], [0.90, 0.92, 0.94]))
    (c,) = result.contrasts
    assert c.gain == pytest.approx(0.10)
    assert c.verdict == K.SUPPORTED and result.verdict == K.SUPPORTED
    assert c.paper_gain == pytest.approx(0.0125)
    assert c.paper_gain_inside is False  # 0.0125 lies below our interval's low end
    assert result.arms["logreg_paper"]["CVAE"].mean == pytest.approx(0.92)


def test_lower_is_better_metric_flips_the_sign():
    fid = K.ClaimMetric("fid_domain", higher=False, paper_values={"VAE": 10.0, "CVAE": 8.0})
    result = K.judge_claim(_claim(fid), "cpu", _values([10, 11, 12], [5, 6, 7], "fid_domain"))
    (c,) = result.contrasts
    assert c.gain == pytest.approx(5.0) and c.verdict == K.SUPPORTED
    assert c.paper_gain == pytest.approx(2.0)
    worse = K.judge_claim(_claim(fid), "cpu", _values([5, 6, 7], [10, 11, 12], "fid_domain"))
    assert worse.verdict == K.CONTRADICTED


def test_missing_values_make_the_contrast_inconclusive_with_a_reason():
    values = {"logreg_paper": {"VAE": {0: 0.9, 1: None, 2: math.nan}, "CVAE": {0: 0.95, 1: 0.96}}}
    result = K.judge_claim(_claim(ACC), "cpu", values)
    (c,) = result.contrasts
    assert c.verdict == K.INCONCLUSIVE and c.welch is None
    assert c.reason == "needs 2 values per arm, has 2 and 1 values"
    assert result.arms["logreg_paper"]["VAE"].missing == (1, 2)


def test_claim_verdict_combines_the_primary_contrasts():
    arms = (*ARMS, K.Arm("VAE+views", "vae-mnist-paper", {"data.augment": "cvae-mnist"}))
    claim = K.Claim("cvae-paper", "toy", "s", arms, (("CVAE", "VAE"), ("CVAE", "VAE+views")),
                    (ACC,), (0, 1, 2), BUDGET)  # fmt: skip
    better, same = [0.90, 0.92, 0.94], [0.80, 0.81, 0.85]
    values = {"logreg_paper": {"VAE": dict(enumerate(same)), "CVAE": dict(enumerate(better)),
                               "VAE+views": dict(enumerate([0.88, 0.93, 0.95]))}}  # fmt: skip
    result = K.judge_claim(claim, "cpu", values)
    assert [c.verdict for c in result.contrasts] == [K.SUPPORTED, K.INCONCLUSIVE]
    assert result.verdict == K.INCONCLUSIVE
    values["logreg_paper"]["VAE+views"] = dict(enumerate([0.97, 0.98, 0.99]))
    assert K.judge_claim(claim, "cpu", values).verdict == K.CONTRADICTED


def test_claim_checks_its_arms_and_seeds():
    with pytest.raises(ValueError, match="contrast"):
        K.Claim("p", "x", "s", ARMS, (("CVAE", "AE"),), (ACC,), (0, 1, 2), BUDGET)
    with pytest.raises(ValueError, match="3 seeds"):
        K.Claim("p", "x", "s", ARMS, (("CVAE", "VAE"),), (ACC,), (0, 1), BUDGET)


def test_report_shows_arms_means_intervals_verdict_and_paper_numbers(tmp_path):
    result = K.judge_claim(_claim(ACC), "cpu", _values([0.80, 0.81, 0.85], [0.90, 0.92, 0.94]))
    result.provenance = {"command": "cvae reproduce cvae-paper --budget cpu", "commit": "abc"}
    paths = write_claim_report(result, tmp_path)
    md = (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    for text in (md, html):
        assert "CVAE vs VAE" in text and "supported" in text
        assert "92.00% (2.00%)" in text  # CVAE mean (std)
        assert "82.00% (2.65%)" in text  # VAE mean (std)
        assert "+10.00%" in text  # the gain
        assert "91.80%" in text and "93.05%" in text  # the paper's cells
        assert "cvae reproduce cvae-paper --budget cpu" in text
        assert "one epoch" in text  # the budget
    _, welch, _, _ = K.welch_interval([0.90, 0.92, 0.94], [0.80, 0.81, 0.85])
    assert f"[{100 * welch.low:+.2f}%, {100 * welch.high:+.2f}%]" in md
    data = json.loads((tmp_path / "claim.json").read_text())
    assert data["verdict"] == K.SUPPORTED
    assert data["values"]["logreg_paper"]["CVAE"] == {"0": 0.9, "1": 0.92, "2": 0.94}
    assert data["contrasts"][0]["ci_welch"] == pytest.approx([welch.low, welch.high])
    assert paths["json"].endswith("claim.json")
    assert K.verdict_line(result).startswith("cvae-paper/toy: supported (CVAE vs VAE")


def test_report_states_fits_that_did_not_converge(tmp_path):
    result = K.judge_claim(_claim(ACC), "cpu", _values([0.80, 0.81, 0.85], [0.90, 0.92, 0.94]))
    write_claim_report(result, tmp_path)
    assert "did not converge" not in (tmp_path / "report.md").read_text()
    result.unconverged = {"logreg_paper": ["vae,train.seed=0", "cvae,train.seed=2"]}
    write_claim_report(result, tmp_path)
    assert "`logreg_paper`: the fit did not converge (stopped at its iteration limit) in 2 of 6 " \
        "runs" in (tmp_path / "report.md").read_text()  # fmt: skip
    data = json.loads((tmp_path / "claim.json").read_text())
    assert data["unconverged"] == {"logreg_paper": ["vae,train.seed=0", "cvae,train.seed=2"]}


def test_every_paper_has_claims_whose_runs_build():
    """Each paper's claims: >= 3 seeds per arm, a cpu budget, valid configs for every run."""
    assert set(CLAIMS) == set(PAPERS)
    for paper, claims in CLAIMS.items():
        assert claims, paper
        for claim in claims:
            jobs = claim_jobs(claim, "cpu")
            assert len(jobs) == len(claim.arms) * len(claim.seeds) and len(claim.seeds) >= 3
            assert [j.error for _, _, j in jobs if j.error] == []
            assert len({j.name for _, _, j in jobs}) == len(jobs)


def test_cvae_views_control_differs_from_the_cvae_only_by_the_ntxent_term():
    (claim,) = paper_claims("cvae-paper", ["mnist"])
    cfg = {a: j.config for a, s, j in claim_jobs(claim, "cpu") if s == 0}
    views, cvae = cfg["VAE+views"], cfg["CVAE"]
    assert views.data.augment == cvae.data.augment == "cvae-mnist"
    assert views.loss.terms.kl.weight == cvae.loss.terms.kl.weight
    assert views.model.channels == cvae.model.channels
    assert not views.loss.terms.ntxent.weight and cvae.loss.terms.ntxent.weight == 0.1


def test_cli_refuses_unknown_claims_and_claims_without_the_cpu_budget(capsys, tmp_path):
    expect_refusal(capsys, ["reproduce", "cvae-paper", "--claim", "mnist"], code=2,
                   needle="--claim needs --budget cpu", root=tmp_path)  # fmt: skip
    expect_refusal(capsys, ["reproduce", "cvae-paper", "--budget", "cpu", "--claim", "svhn",
                            "--out", str(tmp_path / "x")],
                   code=2, needle="unknown claim 'svhn' of cvae-paper", root=tmp_path)  # fmt: skip
    expect_refusal(capsys, ["reproduce", "cvae-paper", "--budget", "cpu", "--claim", "mnist",
                            "--seeds", "1", "--out", str(tmp_path / "x")],
                   code=2, needle="--seeds must be 2..3", root=tmp_path)  # fmt: skip


@pytest.mark.integration
def test_run_claim_trains_evaluates_judges_and_resumes(tmp_path):
    """Two arms x 2 seeds of one-epoch digits runs, two at a time: claim metrics in every run, a
    report with every value, and a re-run that trains nothing."""
    from cvae.experiments.claim_check import CLAIM_METRICS_FILE, run_claim

    tiny = {"data.dataset": "digits", "train.epochs": 1, "model.channels": [8, 16],
            "train.tensorboard": False, "train.progress": False}  # fmt: skip
    arms = (K.Arm("VAE", "vae-mnist-paper"),
            K.Arm("beta 1", "vae-mnist-paper", {"loss.terms.kl.weight": 1.0}))  # fmt: skip
    metric = K.ClaimMetric("knn_weighted_cosine", unit="accuracy")
    claim = K.Claim("cvae-paper", "digits", "s", arms, (("beta 1", "VAE"),),
                    (metric, K.ClaimMetric("active_units")), (0, 1, 2),
                    {"cpu": K.ClaimBudget(tiny, "tiny")})  # fmt: skip
    lines: list[str] = []
    run = functools.partial(run_claim, claim, out=tmp_path, jobs=2, seeds=2, command="test")
    result, paths = run(echo=lines.append)
    assert all(len(r.values) == 2 for r in result.arms["knn_weighted_cosine"].values())
    assert len(list(tmp_path.glob(f"runs/*/{CLAIM_METRICS_FILE}"))) == 4
    assert result.contrasts[0].welch is not None
    assert lines[-1] == K.verdict_line(result)
    assert "beta 1 vs VAE" in (tmp_path / "report.md").read_text()
    lines.clear()
    again, _ = run(echo=lines.append)
    assert not any("start" in line or "claim metrics" in line for line in lines)
    assert again.arms == result.arms
    assert len(again.invocation_seconds) == 2  # the first invocation's time is kept
    assert again.invocation_seconds[0] == round(result.invocation_seconds[0], 1)
    assert " in 2 invocations (" in again.provenance["wall time"]
    assert paths["html"].endswith("report.html")
    assert again.unconverged == {}
    # a probe that stopped at its iteration limit is collected from the run's protocol
    path = next(tmp_path.glob(f"runs/*/{CLAIM_METRICS_FILE}"))
    data = json.loads(path.read_text())
    data["metrics"]["knn_weighted_cosine"]["protocol"]["converged"] = False
    path.write_text(json.dumps(data))
    third, _ = run(echo=lines.append)
    assert third.unconverged == {"knn_weighted_cosine": [path.parent.name]}
    assert "did not converge" in (tmp_path / "report.md").read_text()


def test_earlier_invocations_wall_time_and_commit_are_read_from_claim_json(tmp_path):
    """A re-run adds its time to the earlier invocations' (claim.json) and keeps the commit that
    trained, also from a file written before invocation_seconds existed; an unreadable file
    counts as none."""
    from cvae.experiments.claim_check import _earlier, provenance

    path = tmp_path / "claim.json"
    new = {"invocation_seconds": [300.0, 2.5], "provenance": {"commit": "abc (runs trained...)"}}
    path.write_text(json.dumps(new))
    assert _earlier(tmp_path) == ([300.0, 2.5], "abc")
    old = "27.9 min (this invocation; runs finished earlier are not retrained)"
    path.write_text(json.dumps({"provenance": {"wall time": old, "commit": "def"}}))
    assert _earlier(tmp_path) == ([pytest.approx(27.9 * 60)], "def")
    path.write_text("{not json")
    assert _earlier(tmp_path) == ([], None)
    assert provenance(None, [300.0], [], "abc")["wall time"] == "5.0 min"
    assert provenance(None, [300.0, 6.0], [], "abc")["wall time"] == (
        "5.1 min in 2 invocations (5.0 + 0.1 min; a re-run retrains nothing finished)"
    )
