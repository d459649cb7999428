"""Fine-tune: train a LoRA adapter in the background (finetune.jobs), watch it, manage adapters."""

from __future__ import annotations

import dataclasses

import pandas as pd
import streamlit as st

from dashboard.charts import loss_figure
from dashboard.display import show_chart, show_error, show_table
from dashboard.navigation import run_page
from dashboard.sidebar import adapter_names, device_choice, endpoint_settings, local_model_name
from dashboard.status import eta_text
from dashboard.widgets import setting_widget, survey_picker
from finetune import jobs
from finetune.config import TrainConfig
from finetune.estimate import estimate_duration
from finetune.rows import training_split
from sim_core.base.errors import SimError
from sim_core.base.metrics import METRICS
from sim_core.base.workspace import MAX_NAME, safe_name
from sim_core.evaluation.calibration_records import card_calibration, checkpoint_verdict
from sim_core.evaluation.splits import SPLITS, SplitConfig
from sim_core.simulation import adapters
from sim_core.simulation.adapters import list_adapters
from sim_core.simulation.devices import resolve_device
from sim_core.simulation.prompts import PromptStyle

# TrainConfig fields shown up front; every other field is under "More settings". Labels,
# help and bounds come from the fields themselves (finetune.config.TrainConfig).
MAIN = ("loss", "lr", "epochs", "max_steps", "batch_size", "rank")
FROM_SIDEBAR = ("device",)


def config_widgets():
    """TrainConfig from widgets that start at TrainConfig's own defaults (SimError if a value
    is out of bounds: shown before anything starts)."""
    values = {}
    cols = st.columns(3)
    for i, name in enumerate(MAIN):
        values[name] = setting_widget(cols[i % 3], TrainConfig, name, f"ft_cfg_{name}",
                                      persist_state="session")
    with st.expander("More settings"):
        cols = st.columns(3)
        rest = [f.name for f in dataclasses.fields(TrainConfig)
                if f.name not in MAIN + FROM_SIDEBAR and f.metadata["setting"]["cli"]]
        for i, name in enumerate(rest):
            values[name] = setting_widget(cols[i % 3], TrainConfig, name,
                                          f"ft_cfg_{name}", persist_state="session")
    return TrainConfig(**values, device=device_choice())


def planned_split(survey, how: str, config):
    """The rows the job will train and test on (the same split start() hands the job)."""
    return training_split(survey, None, SplitConfig(how=how), seed=config.seed,
                          loss=config.loss)


def start(survey_name: str, survey, split, name: str, config, overwrite: bool) -> None:
    """Start a background job on the split (its state is in workspace/jobs)."""

    base = local_model_name()   # training runs here, whatever the sidebar's backend
    try:
        job = jobs.start_job(split, name=name, base=base, config=config, overwrite=overwrite,
                             style=PromptStyle().for_survey(survey),
                             data_info={"survey": survey_name, "fingerprint": survey.fingerprint})
    except SimError as error:
        show_error(error)
        return
    st.session_state["ft_job"] = job
    st.success(f"Training '{name}' started; you can use the other pages meanwhile.")


def adapter_name_widget(survey_name: str) -> str:
    """The new adapter's name, proposed from the survey and proposed again when the survey
    changes (a name typed for another survey would label the adapter wrongly)."""
    if st.session_state.get("ft_name_for") != survey_name:
        st.session_state["ft_name"] = safe_name(f"{survey_name}-lora")
        st.session_state["ft_name_for"] = survey_name
    return st.text_input("Adapter name", key="ft_name", persist_state="session", max_chars=MAX_NAME,
                         help="Stored exactly under this name: letters, digits, '.', '_', "
                              "'-'").strip()


def duration_note(split, config) -> None:
    """Planned steps and, from a measured step time, how long the job will take."""
    try:
        estimate = estimate_duration(split, config, local_model_name(),
                                     resolve_device(config.device))
    except SimError as error:
        show_error(error)
        return
    st.caption(estimate.text())


def job_panel() -> None:
    """Every job (any tab, any session: their state is in workspace/jobs): the running and
    queued ones live, one at a time per machine, then a table of all."""
    try:
        states = jobs.list_jobs()
    except SimError as error:
        show_error(error)
        return
    if not states:
        return
    active = [s["id"] for s in reversed(states) if s.get("status") in jobs.ACTIVE]
    if active:
        live_jobs(active)
    else:
        draw_job(states[0])
    if len(states) > 1:
        with st.expander(f"All training jobs ({len(states)})"):
            st.dataframe(jobs_table(states), hide_index=True, key="ft_jobs_table")


def jobs_table(states: list[dict]) -> pd.DataFrame:
    """One row per job, newest first: adapter name, state, when, and why it ended."""
    return pd.DataFrame([{"adapter": s.get("name"), "state": s.get("status"),
                          "created": s.get("created"), "finished": s.get("finished"),
                          "message": s.get("error") or ""} for s in states])


@st.fragment(run_every=2)
def live_jobs(job_ids: list[str]) -> None:
    """Redraws the running and queued jobs (oldest first) every 2 s; reruns the page once
    one has ended."""
    states = [jobs.job_status(job_id) for job_id in job_ids]
    for place, state in enumerate(states):
        draw_job(state, place)
    if any(state.get("status") not in jobs.ACTIVE for state in states):
        st.rerun()


def history(events: list[dict]) -> pd.DataFrame:
    """Training events -> step, loss, val (validation KL where one was measured)."""
    frame = pd.DataFrame(events, columns=["step", "total_steps", "loss", "val", "eta_s"])
    frame["val"] = [v.get("kl") if isinstance(v, dict) else None for v in frame["val"]]
    return frame


def draw_job(state: dict, place: int = 0) -> None:
    """Status, the current phase with its own bar (loading, scoring before training,
    training steps, scoring the adapter) and time left, loss curve, cancel; scores and
    card when done. `place`: position among the live jobs (0 runs, the others wait)."""
    status = state.get("status", "?")
    job_id = state.get("id", "")
    waiting = status == "queued" and not state.get("pid")
    st.subheader(f"Job '{state.get('name')}': "
                 + (f"waiting (number {place} in the queue)" if waiting else status))
    events = history(state.get("events") or [])
    phase = state.get("phase")
    if status in jobs.ACTIVE and phase and phase != "training" and state.get("phase_total"):
        phase_bar(state)
    elif not events.empty:
        last = events.iloc[-1]
        total = max(int(last["total_steps"] or 0), 1)
        eta = last["eta_s"]
        left = f", {eta_text(float(eta))}" if pd.notna(eta) and status in jobs.ACTIVE else ""
        st.progress(min(int(last["step"]) / total, 1.0),
                    text=f"step {int(last['step'])}/{total}{left}")
    elif waiting:
        st.caption("Starts when the job before it ends (one training job at a time).")
    elif status in jobs.ACTIVE:
        st.caption("Starting the training process…")
    if not events.empty:
        show_chart(lambda: loss_figure(events), key=f"ft_loss_chart_{job_id}")
    if status in jobs.ACTIVE:
        if st.button("Cancel training" if not waiting else "Remove from the queue",
                     key=f"ft_cancel_{job_id}"):
            jobs.cancel_job(job_id)
            st.info("Cancelling: the job stops within seconds; nothing is saved.")
    elif status == "done" and state.get("result"):
        result_panel(state["result"])
    elif state.get("error"):
        (st.warning if status == "cancelled" else st.error)(state["error"])
    if status == "failed":
        resume_panel(job_id)


def resume_panel(job_id: str) -> None:
    """What resuming a failed job keeps and loses, and the Resume button (finetune.jobs)."""
    try:
        st.caption(jobs.resume_note(job_id))
    except SimError as error:
        show_error(error)
        return
    if st.button("Resume training", key=f"ft_resume_{job_id}", type="primary"):
        try:
            jobs.resume_job(job_id)
        except SimError as error:
            show_error(error)
            return
        st.rerun()


def phase_bar(state: dict) -> None:
    """The bar of a phase outside the training steps, e.g. "scoring before training: 40 of
    120 rows, about 30 s left"."""
    done, total = int(state.get("phase_done") or 0), int(state["phase_total"])
    eta = state.get("phase_eta_s")
    unit = "" if state["phase"] == "loading the model" else f": {done} of {total} rows"
    text = f"{state['phase'].capitalize()}{unit}" + (
        f", {eta_text(float(eta))}" if eta is not None and done < total else "")
    st.progress(min(done / max(total, 1), 1.0), text=text)


SCORE_COLUMNS = {"before": "before (raw)", "before_calibrated": "before (calibrated)",
                 "after": "after (raw)", "after_calibrated": "after (calibrated)"}


def scores_table(scores: dict) -> pd.DataFrame:
    """Held-out scores of a training result or card: raw and calibrated, and baselines."""
    keys = [k for k in METRICS if any(k in (scores.get(c) or {}) for c in SCORE_COLUMNS)]
    table = pd.DataFrame({"score": [METRICS[k].name for k in keys],
                          "better": [METRICS[k].direction for k in keys]})
    for column, heading in SCORE_COLUMNS.items():
        if scores.get(column):
            table[heading] = [scores[column].get(k) for k in keys]
    for name, values in (scores.get("baselines") or {}).items():
        table[name] = [values.get(k) for k in keys]
    return table


def card_panel(card, key: str) -> None:
    """The adapter's verdict, its held-out scores raw and calibrated, and the whole card."""
    try:
        st.info(checkpoint_verdict(card_calibration(card), card.name))
    except SimError as error:
        show_error(error)
    show_table(scores_table(card.to_dict()), f"{key}_scores")
    with st.expander("Adapter card"):
        st.json(card.to_dict(), expanded=1)


def result_panel(result: dict) -> None:
    """Held-out scores before and after training, and the new adapter's card."""
    st.markdown(f"**Adapter '{result.get('adapter')}' saved. Held-out (test) scores, base "
                "model before and with the adapter after, each raw and calibrated (fitted on "
                "the validation rows):**")
    card = next((a.card for a in list_adapters() if a.name == result.get("adapter")), None)
    if card is not None:
        card_panel(card, "ft_before_after")
    else:
        show_table(scores_table(result), "ft_before_after_scores")


def adapter_action(action: str) -> None:
    """Rename or delete the picked adapter (button callback: runs before the page redraws,
    so the sidebar and every list see the change); errors kept for the page to show."""
    name, new = st.session_state.get("ft_adapter"), st.session_state.get("ft_new_name", "")
    try:
        if action == "rename":
            adapters.rename_adapter(name, new.strip())
            st.session_state["ft_adapter"] = new.strip()
        else:
            adapters.delete_adapter(name)
        st.session_state["ft_adapter_error"] = None
    except SimError as error:
        st.session_state["ft_adapter_error"] = str(error)


def adapters_table(infos) -> pd.DataFrame:
    """One row per adapter: base, data, steps, date and held-out KL before / after."""
    return pd.DataFrame([{
        "name": a.name, "base": a.card.base_label or a.card.base_model,
        "trained on": a.card.data.get("survey"), "steps": a.card.steps,
        "KL before": a.card.before.get("kl"), "KL after": a.card.after.get("kl"),
        "KL after, calibrated": a.card.after_calibrated.get("kl"),
        "date": a.card.date} for a in infos])


def adapters_section() -> None:
    """List, rename, delete and download adapters (sim_core.simulation.adapters)."""
    st.subheader("Adapters")
    if st.session_state.get("ft_adapter_error"):
        st.error(st.session_state["ft_adapter_error"])
    infos = adapters.list_adapters()
    if not infos:
        st.caption("No adapter yet.")
        return
    show_table(adapters_table(infos), "ft_adapters_table")
    name = st.selectbox("Adapter", [a.name for a in infos], key="ft_adapter")
    card_panel(next(a.card for a in infos if a.name == name), "ft_card")
    cols = st.columns([2, 1, 1, 1], vertical_alignment="bottom")
    new = cols[0].text_input("New name", key="ft_new_name", max_chars=MAX_NAME)
    cols[1].button("Rename", key="ft_rename", disabled=not new.strip(),
                   on_click=adapter_action, args=("rename",))
    cols[2].button("Delete", key="ft_delete", on_click=adapter_action, args=("delete",))
    cols[3].download_button("Download (zip)", lambda: adapters.export_adapter_zip(name),
                            f"{name}.zip", "application/zip", key="ft_download")


def main() -> None:
    """Draw the page."""
    st.header("Fine-tune an adapter")
    if endpoint_settings() is not None:
        st.caption(f"Training runs on this computer, on the local base model "
                   f"'{local_model_name()}'. To simulate with the new adapter through the "
                   "endpoint, serve it by name (vLLM: `--lora-modules NAME=PATH`).")
    name_, survey = survey_picker("ft", "Training data (a loaded survey)")
    if survey is not None:
        how = st.selectbox("Hold out for testing", list(SPLITS),
                           format_func=lambda k: SPLITS[k].label, key="ft_split",
                           help="; ".join(f"{c.label}: {c.help}" for c in SPLITS.values()),
                           persist_state="session")
        name = adapter_name_widget(name_)
        replace = name in adapter_names() and st.checkbox(
            f"Replace the adapter '{name}' when training ends", key="ft_replace",
            persist_state="session")
        split = None
        try:
            config = config_widgets()
            split = planned_split(survey, how, config)
        except SimError as error:          # a setting out of bounds, or rows that cannot split
            show_error(error)
        if split is not None:
            duration_note(split, config)
        if st.button("Start training", type="primary", key="ft_start", disabled=split is None,
                     help=None if split is not None else "Fix the message above first."):
            start(name_, survey, split, name, config, replace)
    job_panel()
    adapters_section()


if __name__ == "__main__":
    run_page(main)
