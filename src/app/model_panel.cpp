// Model panel: open a model (files, drop, or a bundled one), loading progress,
// and the model card of the model on screen.
#include <algorithm>

#include "app/platform.h"
#include "app/ui.h"
#include "app/views.h"
#include "app/widgets.h"
#include "imgui.h"

namespace cs::app {

namespace {

void card_row(const char* key, const std::string& value, const char* help = nullptr) {
  ImGui::TableNextRow();
  ImGui::TableSetColumnIndex(0);
  ImGui::TextDisabled("%s", key);
  if (help) ui::help_marker(help);
  ImGui::TableSetColumnIndex(1);
  ImGui::TextWrapped("%s", value.c_str());
}

const char* positional_text(PosEmbed p) {
  switch (p) {
    case PosEmbed::Standard: return "standard (W_pos added to the residual stream)";
    case PosEmbed::Shortformer: return "shortformer (W_pos added to query and key inputs only)";
    case PosEmbed::None: return "none";
  }
  return "?";
}

const char* norm_text(Norm n) {
  switch (n) {
    case Norm::None: return "none";
    case Norm::LN: return "LayerNorm (learned w, b)";
    case Norm::LNPre: return "LayerNorm without w, b (LNPre; w, b folded into the next weights)";
  }
  return "?";
}

}  // namespace

void Page::draw_open(Session& s) {
  if (ImGui::Button("Open model files...")) platform::open_file_picker();
  ui::mark_item("open_files");
  ui::help_marker(
      "Pick the files of one model: model.safetensors, config.json and tokenizer.json (select all three), "
      "or a single .safetensors that carries its config in its metadata, "
      "or a PyTorch state dict (model_final.pth or any .pth, as torch.save writes it) with its config.json. "
      "Weights use TransformerLens names (embed.W_E, blocks.0.attn.W_Q, ...). "
      "You can also drop the files anywhere on this page.");
  ui::explain("or drop model.safetensors (or .pth) + config.json + tokenizer.json anywhere on the page");
  if (s.active()) {
    if (ImGui::Button("Copy link")) platform::copy_link();
    ui::mark_item("copy_link");
    ui::help_marker(
        "Copies the address of what you see now: the model, the tab and each view's settings (the head, the "
        "tokens, the prompt, locked positions, ablated heads). Whoever opens it sees the same. A model from files "
        "you dropped cannot travel in a link: they will be asked to drop the same files.");
  }

  const auto& bundled = s.bundled();
  if (!bundled.empty()) {
    const int pick = s.bundled_pick();
    ImGui::SetNextItemWidth(std::max(ImGui::GetContentRegionAvail().x - ImGui::GetFontSize() * 4.f, 80.f));
    if (ImGui::BeginCombo("##bundled", bundled[size_t(pick)].title.c_str())) {
      for (int i = 0; i < int(bundled.size()); ++i) {
        const auto& b = bundled[size_t(i)];
        if (ImGui::Selectable(b.title.c_str(), i == pick)) s.pick_bundled(i);
        if (ImGui::IsItemHovered() && !b.description.empty()) ImGui::SetTooltip("%s", b.description.c_str());
      }
      ImGui::EndCombo();
    }
    ImGui::SameLine();
    ImGui::BeginDisabled(s.download().active);
    if (ImGui::Button("Load")) platform::load_bundled(bundled[size_t(s.bundled_pick())].id);
    ImGui::EndDisabled();
  }

  const DownloadProgress& d = s.download();
  if (d.active) {
    const float frac = d.total > 0 ? float(d.loaded / d.total) : 0.f;
    std::string label = d.total > 0 ? ui::fmt("%.1f / %.1f MB", d.loaded / 1e6, d.total / 1e6)
                                    : ui::fmt("%.1f MB", d.loaded / 1e6);
    ImGui::TextUnformatted(d.label.c_str());  // the shell's words: "Downloading <model>", "Reading <file>"
    ImGui::ProgressBar(frac, ImVec2(-1.f, 0.f), label.c_str());
  }
  if (s.loading()) {
    if (widgets::progress_line("load", "Loading " + s.load_label(), s.load_progress(), s.load_stage()))
      s.cancel_load();
  }
}

namespace {

void draw_card(Session& s) {
  const ActiveModel* a = s.active();
  if (!a) {
    ui::explain("No model loaded yet.");
    return;
  }
  const LoadedModel* lm = s.shown();
  const ModelConfig& c = lm->model.config();
  ImGui::PushTextWrapPos(0.f);
  ImGui::PushFont(ui::heading_font());
  ImGui::TextUnformatted(a->title.c_str());
  ImGui::PopFont();
  if (!a->description.empty()) ui::explain(a->description.c_str());
  ImGui::PopTextWrapPos();

  bool raw = s.show_raw();
  if (ImGui::Checkbox("Show raw weights (as stored)", &raw)) s.set_raw(raw);
  ui::mark_item("raw_checkbox");
  ui::help_marker(
      "TransformerLens processes weights by default when it loads a model: fold_ln (LayerNorm's w and b "
      "move into the next weights), center_writing_weights, center_unembed, fold_value_biases. Each step "
      "leaves the model's predictions unchanged but changes the numbers you read. Tick this to see the "
      "weights exactly as stored in the file.");
  if (s.raw_pending()) ImGui::TextDisabled("loading the raw weights...");

  if (ImGui::BeginTable("##card", 2, ImGuiTableFlags_SizingStretchProp | ImGuiTableFlags_RowBg)) {
    ImGui::TableSetupColumn("key", ImGuiTableColumnFlags_WidthFixed, ImGui::GetFontSize() * 8.f);
    ImGui::TableSetupColumn("value", ImGuiTableColumnFlags_WidthStretch);
    if (!c.name.empty() && c.name != a->title) card_row("name", c.name);
    card_row("weights", lm->model.processing.any()
                            ? lm->model.processing.describe() + " (TransformerLens defaults)"
                            : lm->model.processing.describe(),
             "Which TransformerLens weight-processing steps the numbers on screen went through.");
    card_row("layers", std::to_string(c.n_layers), "Attention-only blocks (no MLPs).");
    card_row("d_model", std::to_string(c.d_model), "Width of the residual stream.");
    card_row("heads", ui::fmt("%d heads x d_head %d", c.n_heads, c.d_head), "Attention heads per layer.");
    card_row("n_ctx", std::to_string(c.n_ctx), "Longest context (number of positions).");
    card_row("d_vocab", c.vocab_out() == c.d_vocab ? std::to_string(c.d_vocab)
                                                   : ui::fmt("%d in, %d out", c.d_vocab, c.vocab_out()));
    std::string params =
        ui::thousands(lm->model.parameter_count()) + " (" + ui::si(double(lm->model.parameter_count())) + ")";
    if (lm->model.processing.fold_ln) {
      // fold_ln moved LayerNorm's w and b (per block and final) into the next weights.
      const int64_t folded = 2ll * c.d_model * (c.n_layers + 1);
      params += ", " + ui::thousands(lm->model.parameter_count() + folded) + " as stored (LayerNorm w, b folded in)";
    }
    card_row("parameters", params);
    card_row("positions", positional_text(c.positional));
    card_row("normalization", norm_text(c.normalization));
    card_row("attn_scale", ui::fmt("%g", double(c.scale())), "Attention scores are q.k / attn_scale.");
    if (lm->tokenizer)
      card_row("tokenizer", lm->tokenizer->kind() + ", " + ui::thousands(lm->tokenizer->vocab_size()) + " tokens");
    else
      card_row("tokenizer", "none (tokens are shown as #id)");
    if (!c.tokenizer_name.empty()) card_row("tokenizer_name", c.tokenizer_name);
    card_row("file", lm->weights_file + (a->origin == "bundled"   ? " (bundled)"
                                         : a->origin == "trained" ? " (trained in this page)"
                                                                  : " (your files)"));
    ImGui::EndTable();
  }
  if (!lm->warnings.empty()) {
    ImGui::Spacing();
    ImGui::PushStyleColor(ImGuiCol_Text, ui::kWarningText);
    ImGui::TextUnformatted("Warnings");
    for (const auto& w : lm->warnings) {
      ImGui::Bullet();
      ImGui::TextWrapped("%s", w.c_str());
    }
    ImGui::PopStyleColor();
  }
}

// The whole analysis as one JSON file (app/analysis_report.h): a button, then
// the job's progress with Cancel; the file is saved the frame it is done.
void draw_report(App& app) {
  Session& s = app.session();
  AnalysisReport& r = app.analysis_report();
  if (auto f = r.take_ready()) platform::download(f->name, "application/json", f->json);
  if (!s.shown()) return;
  ImGui::Spacing();
  if (r.running(s)) {
    const JobRunner::Info* info = s.jobs().info(AnalysisReport::kSlot);
    const float progress = info ? info->progress : 0.f;
    if (widgets::progress_line("report", "Computing the analysis report", progress,
                               ui::fmt("%d%%  %s", int(progress * 100.f), info ? info->stage.c_str() : "")))
      r.cancel(s);
    return;
  }
  if (ImGui::Button("Download analysis report (JSON)")) r.start(s);
  ui::mark_item("report_button");
  ui::help_marker(
      "Every model-wide number in one file: the model card, each head's scores and eigenvalues, the Q-, K- and "
      "V-composition scores, the largest virtual heads, and the repeated-random-tokens experiment with the "
      "induction-head scores. The same file as `circuitscope report MODEL --json` on the command line (its "
      "\"commands\" field says which command prints each section alone). It uses the weights shown (processed or "
      "raw) and takes a few seconds on a small model.");
}

}  // namespace

void Page::draw_model_panel(App& app) {
  Session& s = app.session();
  ui::heading("Model");
  draw_open(s);
  ImGui::Separator();
  draw_card(s);
  draw_report(app);
  ImGui::Separator();
  ImGui::PushTextWrapPos(0.f);
  const int threads = s.jobs().threads();
  if (threads >= 2)
    ImGui::TextDisabled("Computing on %d worker threads (this page is cross-origin isolated).", threads);
  else
    ImGui::TextDisabled("Computing on 1 thread, between frames. Worker threads need a host that sends the "
                        "COOP and COEP headers (see the README).");
  ui::mark_item("threads_mode");
  ImGui::PopTextWrapPos();
}

}  // namespace cs::app
