"""The Space's layout and event wiring: `build_app(runtime)`, `launch_kwargs()` and `main()`.

Layout first, wiring last; handlers are in `clipdemo.ui.handlers` and `clipdemo.ui.evaluation`.
"""

from __future__ import annotations

import logging

import gradio as gr

from ..data import TEST_SIZE
from ..images import MAX_BYTES
from ..presets import LABEL_PRESETS, TEMPLATE_SETS
from ..runtime import Runtime
from ..settings import from_env
from .evaluation import SUBSET_CHOICES, TEMPLATE_CHOICES, Evaluation
from .handlers import CUSTOM, DEFAULT_INDEX, MEAN_HEADS, ROLLOUT, Handlers, LabelState
from .texts import ABOUT, CSS

__all__ = ["build_app", "launch_kwargs", "main"]

def build_app(runtime: Runtime) -> gr.Blocks:
    """The whole Space as a `gr.Blocks` (not launched)."""
    h = Handlers(runtime)
    ev = Evaluation(runtime, h)
    preset_choices = [(p.title, p.key) for p in LABEL_PRESETS.values()] + [("Custom", CUSTOM)]
    template_choices = [(t.title, t.key) for t in TEMPLATE_SETS.values()] + [("Custom", CUSTOM)]
    model_events = dict(concurrency_id="model", concurrency_limit=1)

    with gr.Blocks(title="CLIP zero-shot classification", delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# CLIP zero-shot image classification\nOpenAI CLIP ViT-B/32 on CIFAR-100 or your own images, "
                    "with your own labels.")
        status = gr.Markdown("⏳ starting…", elem_id="status")
        timer = gr.Timer(1.0)
        state = gr.State(LabelState())
        last_input = gr.State(None)  # this session's last classified image, for the inside views
        with gr.Tabs():
            with gr.Tab("Predict", id="predict"):
                top_k = gr.Slider(1, 20, value=5, step=1, label="Top-k")
                with gr.Tabs():
                    with gr.Tab("CIFAR-100 index", id="index"):
                        with gr.Row():
                            index = gr.Slider(0, TEST_SIZE - 1, value=DEFAULT_INDEX, step=1,
                                              label="CIFAR-100 test image index", scale=4)
                            prev_btn = gr.Button("◀ prev", scale=0, min_width=80)
                            next_btn = gr.Button("next ▶", scale=0, min_width=80)
                            rand_btn = gr.Button("🎲 random", scale=0, min_width=100)
                        run_index = gr.Button("Classify", variant="primary")
                        with gr.Row():
                            original = gr.Image(label="Original 32×32 (enlarged, no blur)", type="pil",
                                                elem_classes="pixelated", height=224, interactive=False)
                            model_input = gr.Image(label="Model input 224×224", type="pil", height=224,
                                                   interactive=False)
                        truth = gr.Markdown()
                        gr.Examples([[15], [0], [42], [2024], [9999]], inputs=[index], label="Examples (15 is the notebook's lion)",
                                    cache_examples=False)
                    with gr.Tab("Upload", id="upload"):
                        with gr.Row():
                            upload = gr.Image(label="Your image", type="filepath",
                                              sources=["upload", "webcam", "clipboard"], height=280)
                            upload_input = gr.Image(label="Model input 224×224", type="pil", height=280,
                                                    interactive=False)
                        run_upload = gr.Button("Classify upload", variant="primary")
                with gr.Row():
                    result = gr.Label(label="Top-k", num_top_classes=20)
                    chart = gr.Plot(label="Probabilities")
                with gr.Row():
                    lines = gr.Textbox(label="Notebook format (copy)", lines=5, buttons=["copy"], interactive=False,
                                       elem_id="notebook-lines")
                    files = gr.File(label="Download (CSV, JSON)", file_count="multiple", interactive=False)
                with gr.Accordion("Inside the model: patches and attention for this image", open=True):
                    with gr.Row():
                        layer = gr.Dropdown([ROLLOUT, *map(str, range(1, 13))], value=ROLLOUT,
                                            label="Layer (or rollout across all layers)")
                        head = gr.Dropdown([MEAN_HEADS, *map(str, range(1, 13))], value=MEAN_HEADS,
                                           label="Head (or mean over heads)")
                    with gr.Row():
                        patches = gr.Plot(label="Patch embedding: the input cut into patches")
                        attn_img = gr.Image(label="Class-token attention", type="pil", height=420,
                                            interactive=False, elem_id="attention-image")
                    attn_caption = gr.Markdown(elem_id="attention-caption")
            with gr.Tab("Labels", id="labels"):
                label_summary = gr.Markdown(h.label_summary(LabelState(), ready=False), elem_id="label-summary")
                with gr.Row():
                    with gr.Column():
                        preset = gr.Dropdown(preset_choices, value="cifar100", label="Label preset")
                        label_box = gr.Textbox(h.label_text("cifar100"), lines=12, max_lines=20,
                                               label="Labels (one per line, or comma-separated)",
                                               elem_id="label-editor")
                    with gr.Column():
                        tpl_preset = gr.Dropdown(template_choices, value="single", label="Template set")
                        tpl_box = gr.Textbox(h.template_text("single"), lines=6, max_lines=20,
                                             label="Prompt templates (one per line, {} marks the label)")
                check = gr.Markdown(elem_id="label-check")
                apply_btn = gr.Button("Apply", variant="primary")
                with gr.Accordion("Which labels does CLIP confuse? (text features only)", open=False):
                    sim_btn = gr.Button("Show label similarity")
                    sim_plot = gr.Plot(label="Label similarity")
                with gr.Accordion("Tokens: a prompt as CLIP reads it", open=False):
                    prompt_box = gr.Textbox("a photo of a lion", label="Prompt")
                    token_table = gr.Dataframe(label="BPE tokens", elem_id="token-table")
                    token_note = gr.Markdown()
            with gr.Tab("Evaluate", id="evaluate"):
                gr.Markdown("Zero-shot accuracy on the CIFAR-100 test split, scored against all 100 classes. "
                            "Image features are computed once and kept, so a second run (or other templates) "
                            "is almost instant.")
                with gr.Row():
                    ev_subset = gr.Radio(SUBSET_CHOICES, value="first", label="Images")
                    ev_n = gr.Number(1000, precision=0, minimum=1, maximum=TEST_SIZE, label="N (first N)")
                    ev_k = gr.Number(10, precision=0, minimum=1, maximum=100, label="K per class")
                    ev_seed = gr.Number(0, precision=0, label="Seed (stratified sample)")
                with gr.Row():
                    ev_templates = gr.Radio(TEMPLATE_CHOICES, value="both", label="Prompt templates")
                    ev_spelling = gr.Dropdown([(LABEL_PRESETS[k].title, k) for k in ("cifar100", "cifar100-paper")],
                                              value="cifar100", label="Class names")
                with gr.Row():
                    ev_run = gr.Button("Run evaluation", variant="primary")
                    ev_stop = gr.Button("Stop", variant="stop")
                ev_summary = gr.Markdown(elem_id="eval-summary")
                ev_chart = gr.Plot(label="Per-class accuracy")
                ev_confusion = gr.Plot(label="Confusion matrix")
                with gr.Row():
                    ev_pairs = gr.Gallery(label="Most confused pairs (an example of each)", columns=4, height=300)
                    ev_worst = gr.Gallery(label="Most confident mistakes", columns=4, height=300)
                ev_files = gr.File(label="Download (CSV per image, JSON with everything)", file_count="multiple",
                                   interactive=False)
            with gr.Tab("Architecture", id="architecture") as arch_tab:
                depth = gr.Slider(1, 4, value=2, step=1, label="Summary depth")
                card = gr.JSON(label="Configuration (derived from the loaded weights)")
                with gr.Row():
                    with gr.Column():
                        vis_table = gr.Dataframe(label="Vision tower (input 1×3×224×224)", wrap=True,
                                                 elem_id="vision-summary")
                    with gr.Column():
                        txt_table = gr.Dataframe(label="Text tower (input 1×77 tokens)", wrap=True,
                                                 elem_id="text-summary")
                gr.Markdown("Mult-adds are torchinfo's count of the Conv/Linear/Embedding modules it sees run; the "
                            "attention projections inside `nn.MultiheadAttention` run as one fused function, so "
                            "torchinfo leaves them out.")
                with gr.Accordion("torchinfo text", open=False):
                    with gr.Row():
                        vis_text = gr.Textbox(label="Vision tower", lines=20, buttons=["copy"])
                        txt_text = gr.Textbox(label="Text tower", lines=20, buttons=["copy"])
                with gr.Accordion("print(model): the module tree", open=False):
                    tree = gr.Textbox(label="Module tree", lines=30, buttons=["copy"])
                param_map = gr.Plot(label="Where the parameters are (click to zoom)")
            with gr.Tab("About", id="about"):
                gr.Markdown(ABOUT)

        # -- events (layout above, wiring below) --
        # Every event that runs the model shares one queue slot (model_events): on 2 vCPUs, calls that
        # overlap only slow each other down. Private events reuse handlers under their own api_name.
        private = dict(api_visibility="private")
        results = [result, chart, lines, truth, files, last_input]
        index_io = dict(fn=h.predict_index, inputs=[index, top_k, state], outputs=[original, model_input, *results])
        upload_io = dict(fn=h.predict_image, inputs=[upload, top_k, state], outputs=[upload_input, *results],
                         preprocess=False)  # the handler decodes uploads itself (clipdemo.images)
        inside_io = dict(fn=h.attention, inputs=[layer, head, last_input], outputs=[patches, attn_img, attn_caption])
        labels_io = dict(fn=h.set_labels, inputs=[label_box, tpl_box, state], outputs=[state, label_summary])
        arch_io = dict(fn=h.architecture, inputs=depth,
                       outputs=[card, vis_table, vis_text, txt_table, txt_text, tree, param_map])

        demo.load(h.status, None, [status, timer], api_name="status", queue=False)
        ping_btn, ping_out = gr.Button(visible=False), gr.Textbox(visible=False)
        ping_btn.click(h.ping, None, ping_out, api_name="ping", show_progress="hidden")  # health check
        timer.tick(h.status, None, [status, timer], queue=False, **private)

        run_index.click(**index_io, api_name="predict_index", **model_events).success(
            **inside_io, api_name="attention_after_index", **private, **model_events)
        index.change(**index_io, api_name="predict_index_on_change", trigger_mode="always_last", **private,
                     **model_events).success(**inside_io, api_name="attention_after_change", **private, **model_events)
        prev_btn.click(lambda i: h.step_index(i, -1), index, index, queue=False, **private)
        next_btn.click(lambda i: h.step_index(i, 1), index, index, queue=False, **private)
        rand_btn.click(h.random_index, None, index, api_name="random_index", queue=False)
        run_upload.click(**upload_io, api_name="predict_image", **model_events).success(
            **inside_io, api_name="attention_after_upload", **private, **model_events)
        upload.upload(**upload_io, api_name="predict_on_upload", **private, **model_events).success(
            **inside_io, api_name="attention_after_upload_event", **private, **model_events)
        gr.on([layer.input, head.input], **inside_io, api_name="attention", trigger_mode="always_last",
              **model_events)

        preset.input(h.label_text, preset, label_box, queue=False, **private).then(
            **labels_io, api_name="apply_label_preset", **private, **model_events)
        tpl_preset.input(h.template_text, tpl_preset, tpl_box, queue=False, **private).then(
            **labels_io, api_name="apply_template_set", **private, **model_events)
        gr.on([label_box.change, tpl_box.change], h.check_labels, [label_box, tpl_box], check, queue=False,
              trigger_mode="always_last", **private)
        apply_btn.click(**labels_io, api_name="set_labels", **model_events)
        sim_btn.click(h.similarity, state, sim_plot, api_name="label_similarity", **model_events)
        prompt_box.change(h.tokens, prompt_box, [token_table, token_note], api_name="tokens", queue=False,
                          trigger_mode="always_last")
        demo.load(h.tokens, prompt_box, [token_table, token_note], queue=False, **private)

        ev_event = ev_run.click(ev.run, [ev_subset, ev_n, ev_k, ev_seed, ev_templates, ev_spelling],
                                [ev_summary, ev_chart, ev_confusion, ev_pairs, ev_worst, ev_files],
                                api_name="evaluate", **model_events)
        ev_stop.click(None, None, None, cancels=[ev_event], api_visibility="private", queue=False)

        depth.release(**arch_io, api_name="architecture", **model_events)
        arch_tab.select(**arch_io, api_name="architecture_on_tab", **private, **model_events)
    return demo


def launch_kwargs() -> dict:
    """Server settings for `demo.launch()` (host and port come from GRADIO_SERVER_NAME/PORT)."""
    return dict(theme=gr.themes.Soft(), css=CSS, max_file_size=MAX_BYTES, show_error=False,
                enable_monitoring=False, share=False)


def main() -> None:
    """Start the Space: load the model in the background, serve the page at once."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    runtime = Runtime(from_env())
    runtime.start()
    demo = build_app(runtime)
    demo.queue(max_size=64, default_concurrency_limit=1)
    demo.launch(**launch_kwargs())
