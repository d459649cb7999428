"""Fine-tune: train a LoRA adapter in the background (finetune.jobs), watch it, manage adapters."""

from __future__ import annotations

import dataclasses

import pandas as pd
import streamlit as st

from pages import common
from pages.charts import loss_figure
from sim_core.errors import SimError

SPLITS = {"question": "Unseen questions", "slice": "Unseen groups", "wave": "Unseen wave",
          "random": "Random rows"}
# TrainConfig fields shown as widgets; the others keep their documented defaults.
SHOWN = ("rank", "alpha", "lr", "epochs", "max_steps", "batch_size", "loss", "shuffle_options",
         "reweight", "seed")


def config_widgets():
    """TrainConfig from widgets whose defaults are TrainConfig's own."""
    from finetune.train import TrainConfig

    defaults = TrainConfig()
    values = {}
    cols = st.columns(4)
    for i, field in enumerate(f for f in dataclasses.fields(TrainConfig) if f.name in SHOWN):
        value, key, col = getattr(defaults, field.name), f"ft_cfg_{field.name}", cols[i % 4]
        if isinstance(value, bool):
            values[field.name] = col.checkbox(field.name, value=value, key=key)
        elif field.name == "loss":
            options = ["kl", "kl+ordinal", "kl+ce"]
            values[field.name] = col.selectbox("loss", options, index=options.index(value), key=key)
        elif isinstance(value, int):
            values[field.name] = int(col.number_input(field.name, value=value, step=1, key=key))
        elif isinstance(value, float):
            values[field.name] = float(col.number_input(field.name, value=value, format="%g", key=key))
    with st.expander("All training settings (defaults from finetune.train.TrainConfig)"):
        st.json({f.name: str(getattr(defaults, f.name)) for f in dataclasses.fields(TrainConfig)},
                expanded=False)
    return dataclasses.replace(defaults, **values)


def start(survey_name: str, survey, name: str, how: str, config) -> None:
    """Split the survey rows and start a background job (its state is in workspace/jobs)."""
    from finetune import jobs
    from finetune.rows import split_rows
    from sim_core.slices import survey_rows

    base, _ = common.model_choice()
    try:
        split = split_rows(survey_rows(survey), how=how, seed=config.seed)
        job = jobs.start_job(split, name=name, base=base, config=config,
                             data_info={"survey": survey_name, "fingerprint": survey.fingerprint})
    except SimError as error:
        common.show_error(error)
        return
    st.session_state["ft_job"] = job
    st.success(f"Training '{name}' started; you can use the other pages meanwhile.")


@st.fragment(run_every=2)
def job_panel() -> None:
    """Live status of the latest job: loss curve, ETA, cancel; the card when done."""
    from finetune import jobs

    states = jobs.list_jobs()
    if not states:
        return
    state = states[0]
    st.subheader(f"Job '{state['name']}': {state['status']}")
    events = pd.DataFrame(state.get("events") or [])
    if not events.empty:
        last = events.iloc[-1]
        st.progress(min(float(last["step"]) / max(float(last["total_steps"]), 1), 1.0),
                    text=f"step {int(last['step'])}/{int(last['total_steps'])}, "
                         f"ETA {float(last.get('eta_s') or 0):.0f} s")
        if "val" in events:
            events["val"] = events["val"].map(lambda v: next(iter(v.values()), None)
                                              if isinstance(v, dict) else v)
        st.plotly_chart(loss_figure(events), key="ft_loss_chart")
    if state["status"] == "running":
        if st.button("Cancel training", key="ft_cancel"):
            jobs.cancel_job(state["id"])
    elif state.get("error"):
        st.error(state["error"])
    elif state.get("result"):
        result = state["result"]
        st.markdown("**Held-out scores before and after**")
        st.dataframe(pd.DataFrame({"before": result.get("before", {}),
                                   "after": result.get("after", {})}), key="ft_before_after")


def adapters_section() -> None:
    """List, rename, delete and download adapters (sim_core.adapters)."""
    from sim_core import adapters

    st.subheader("Adapters")
    infos = adapters.list_adapters()
    if not infos:
        st.caption("No adapter yet.")
        return
    st.dataframe(pd.DataFrame([{"name": a.name, "base": a.card.get("base_model"),
                                "created": a.card.get("created"), "path": str(a.path)}
                               for a in infos]), hide_index=True, key="ft_adapters_table")
    name = st.selectbox("Adapter", [a.name for a in infos], key="ft_adapter")
    card = next(a.card for a in infos if a.name == name)
    with st.expander("Card"):
        st.json(card, expanded=False)
    cols = st.columns(3)
    new = cols[0].text_input("New name", key="ft_new_name")
    try:
        if cols[0].button("Rename", key="ft_rename", disabled=not new.strip()):
            adapters.rename_adapter(name, new.strip())
            common.adapter_names.clear()
            st.rerun()
        if cols[1].button("Delete", key="ft_delete"):
            adapters.delete_adapter(name)
            common.adapter_names.clear()
            st.rerun()
        cols[2].download_button("Download (zip)", adapters.export_adapter_zip(name),
                                f"{name}.zip", "application/zip", key="ft_download")
    except SimError as error:
        common.show_error(error)


def main() -> None:
    """Draw the page."""
    st.header("Fine-tune an adapter")
    name_, survey = common.survey_picker("ft", "Training data (a loaded survey)")
    if survey is not None:
        how = st.selectbox("Hold out", list(SPLITS), format_func=SPLITS.get, key="ft_split")
        name = st.text_input("Adapter name", value=f"{name_}-lora", key="ft_name")
        try:
            config = config_widgets()
        except (TypeError, ValueError) as error:
            common.show_error(error)
            config = None
        if st.button("Start training", type="primary", key="ft_start", disabled=config is None):
            start(name_, survey, name.strip(), how, config)
    job_panel()
    adapters_section()


if __name__ == "__main__":
    main()
