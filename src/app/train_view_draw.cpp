// The Train view's drawing (page build only; train_view.h).
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "app/platform.h"
#include "app/train_view.h"
#include "app/ui.h"
#include "app/widgets.h"
#include "imgui.h"

namespace cs::app {

namespace {

// Moving average of the last `w` values (the batch loss is noisy).
std::vector<float> smoothed(const std::vector<float>& v, size_t w) {
  std::vector<float> out(v.size());
  double sum = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    sum += v[i];
    if (i >= w) sum -= v[i - w];
    out[i] = float(sum / double(std::min(i + 1, w)));
  }
  return out;
}

// One line per head of a [layer, head] score over the evaluations.
std::vector<widgets::LineSeries> head_lines(const TrainRun& r, bool prefix) {
  const int L = r.config().model.n_layers, H = r.config().model.n_heads;
  std::vector<widgets::LineSeries> out;
  for (int l = 0; l < L; ++l)
    for (int h = 0; h < H; ++h) {
      widgets::LineSeries s;
      s.label = head_text(l, h);
      s.color = widgets::series_color(size_t(l * H + h));
      for (const TrainEval& e : r.evals()) {
        const RowMat& m = prefix ? e.prefix_matching : e.prev_token;
        if (m.rows() <= l || m.cols() <= h) continue;
        s.x.push_back(float(e.step));
        s.y.push_back(m(l, h));
      }
      out.push_back(std::move(s));
    }
  return out;
}

// An integer setting: changed only within the selection's checks (a refused
// value leaves the selection as it was and says why in the banner).
void int_setting(Session& s, TrainView& v, const char* label, const char* key, int value, const char* help) {
  int x = value;
  ImGui::SetNextItemWidth(ImGui::GetFontSize() * 7.f);
  if (ImGui::InputInt(label, &x, 0, 0, ImGuiInputTextFlags_EnterReturnsTrue) && x != value) {
    Json j = v.selection().to_json();
    j[key] = x;
    if (std::string(key) == "layers" || std::string(key) == "heads") j["head"] = nullptr;  // the drawn head may be gone
    try {
      v.set_selection_json(s, j);
    } catch (const std::exception& e) {
      s.set_error(e.what());
    }
  }
  if (help && ImGui::IsItemHovered()) ImGui::SetTooltip("%s", help);
}

}  // namespace

void TrainView::save_download() const {
  std::string name;
  const FileSet files = save_files(name);
  platform::save_folder(name, files);
}

void TrainView::draw(Session& s) {
  const float fs = ImGui::GetFontSize();
  ImGui::TextWrapped(
      "Train a small attention-only transformer here, in your browser, and watch what it learns. On repeated "
      "random tokens the only way to predict the repeats is an induction head, and it forms suddenly: the "
      "phase change. Nothing leaves your machine.");

  // ---- what to train ----
  const TrainPreset* preset = find_train_preset(sel_.preset);
  ImGui::SetNextItemWidth(fs * 26.f);
  if (ImGui::BeginCombo("preset", preset ? preset->title.c_str() : sel_.preset.c_str())) {
    for (const TrainPreset& p : train_presets())
      if (ImGui::Selectable(p.title.c_str(), p.id == sel_.preset)) {
        sel_ = TrainSelection::of_preset(p.id);
      }
    ImGui::EndCombo();
  }
  ui::mark_item("train_preset");
  ImGui::SameLine();
  ui::help_marker("The same trainer as `circuitscope train` (AdamW, the same data and evaluation): the same "
                  "settings and seed give the same weights. See docs/training.md.");
  if (preset) ImGui::TextWrapped("%s", preset->description.c_str());

  // ---- the data ----
  {
    static const char* const kTexts[] = {"", "sample", "file"};
    static const char* const kTextNames[] = {"none: generated tokens only", "the text sample (Python docs and code)",
                                             "a text file of yours"};
    int which = sel_.text == "sample" ? 1 : sel_.text == "file" ? 2 : 0;
    ImGui::SetNextItemWidth(fs * 20.f);
    if (ImGui::Combo("text", &which, kTextNames, 3)) {
      Json j = sel_.to_json();
      j["text"] = kTexts[which];
      try {
        set_selection_json(s, j);
      } catch (const std::exception& e) {
        s.set_error(e.what());
      }
    }
    ui::mark_item("train_text");
    ImGui::SameLine();
    if (ImGui::Button("Text file...")) platform::open_text_picker();
    ui::mark_item("train_text_file");
    if (ImGui::IsItemHovered())
      ImGui::SetTooltip("Train on a text file of yours (UTF-8), tokenized here with the shown model's tokenizer. "
                        "Its last twentieth is held out. Nothing leaves your machine.");
    if (const JobRunner::Info* info = s.jobs().info(kTextSlot)) {
      ImGui::ProgressBar(info->progress, ImVec2(fs * 20.f, 0.f), info->stage.c_str());
    } else if (const TrainText* t = selected_text()) {
      ImGui::TextDisabled("%s: %s tokens%s, vocabulary %d", t->name.c_str(), ui::thousands(int64_t(t->ids.size())).c_str(),
                          t->heldout.empty() ? "" : (" + " + ui::thousands(int64_t(t->heldout.size())) + " held out").c_str(),
                          t->d_vocab);
    } else if (sel_.text == "sample") {
      ImGui::TextDisabled("The sample (about 2 MB) downloads when you press Train.");
    } else if (sel_.text == "file") {
      ImGui::TextDisabled("Choose a file with Text file...");
    }
  }
  if (ImGui::CollapsingHeader("Settings")) {
    int_setting(s, *this, "seed", "seed", sel_.seed, "The same seed and settings give the same run.");
    ImGui::SameLine();
    int_setting(s, *this, "updates", "steps", sel_.steps, "Optimizer updates (steps) in all.");
    ImGui::SameLine();
    int_setting(s, *this, "batch", "batch", sel_.batch, "Sequences per update.");
    int_setting(s, *this, "layers", "layers", sel_.layers, nullptr);
    ImGui::SameLine();
    int_setting(s, *this, "heads", "heads", sel_.heads, "Heads per layer.");
    ImGui::SameLine();
    int_setting(s, *this, "d_model", "d_model", sel_.d_model, "Width of the residual stream.");
    int_setting(s, *this, "d_head", "d_head", sel_.d_head, nullptr);
    ImGui::SameLine();
    int_setting(s, *this, "n_ctx", "n_ctx", sel_.n_ctx, "Tokens per sequence.");
    ImGui::SameLine();
    int_setting(s, *this, "vocabulary", "vocab", sel_.vocab,
                "Token ids 0..vocabulary-1 of generated data (0 is the BOS). With a text, its tokenizer's.");
    int_setting(s, *this, "shortest segment", "min_len", sel_.min_len,
                "Each training sequence is a segment of random tokens repeated; its length is drawn from "
                "[shortest, longest].");
    ImGui::SameLine();
    int_setting(s, *this, "longest segment", "max_len", sel_.max_len, nullptr);
    int_setting(s, *this, "warm-up updates", "warmup", sel_.warmup, "The learning rate rises linearly over these.");
    ImGui::SameLine();
    int_setting(s, *this, "evaluate every", "eval_every", sel_.eval_every,
                "Scores, held-out loss, attention and a snapshot every this many updates.");
    {
      char buf[256];
      std::snprintf(buf, sizeof buf, "%s", sel_.curriculum.c_str());
      ImGui::SetNextItemWidth(fs * 20.f);
      if (ImGui::InputTextWithHint("curriculum", sel_.text.empty() ? "repeat" : "text", buf, sizeof buf,
                                   ImGuiInputTextFlags_EnterReturnsTrue) &&
          sel_.curriculum != buf) {
        Json j = sel_.to_json();
        j["curriculum"] = std::string(buf);
        try {
          set_selection_json(s, j);
        } catch (const std::exception& e) {
          s.set_error(e.what());
        }
      }
      ui::mark_item("train_curriculum");
      if (ImGui::IsItemHovered())
        ImGui::SetTooltip("Phases of data, as `circuitscope train --curriculum`: e.g. text:300,repeat:700,text:500 "
                          "(repeat:N:8-40 sets a phase's segment lengths). The last phase runs to the end. Empty: "
                          "one phase, the text if one is chosen, else repeated random tokens.");
    }
    double lr = sel_.lr;
    ImGui::SetNextItemWidth(fs * 7.f);
    if (ImGui::InputDouble("learning rate", &lr, 0, 0, "%.2e", ImGuiInputTextFlags_EnterReturnsTrue) &&
        lr != sel_.lr) {
      Json j = sel_.to_json();
      j["lr"] = lr;
      try {
        set_selection_json(s, j);
      } catch (const std::exception& e) {
        s.set_error(e.what());
      }
    }
    ImGui::TextDisabled("Changes apply when you press Train (or Restart).");
  }

  // ---- controls ----
  const Status st = status(s);
  const bool has_run = run_ != nullptr;
  if (st == Status::running) {
    if (ImGui::Button("Pause")) pause(s);
    ui::mark_item("train_pause");
    ImGui::SameLine();
  } else if (st == Status::paused) {
    if (ImGui::Button("Resume")) resume(s);
    ui::mark_item("train_resume");
    ImGui::SameLine();
  }
  if (st == Status::running || st == Status::paused) {
    if (ImGui::Button("Stop")) stop(s);
    ui::mark_item("train_stop");
    ImGui::SameLine();
  }
  if (ImGui::Button(has_run ? "Restart" : "Train")) {
    try {
      start(s);
    } catch (const std::exception& e) {
      s.set_error(e.what());
    }
  }
  ui::mark_item("train_start");
  if (st == Status::loading) {
    ImGui::SameLine();
    ImGui::TextDisabled("%s", s.jobs().running(kTextSlot) ? "tokenizing the text..." : "downloading the text sample...");
  }
  if (has_run) {
    ImGui::SameLine();
    if (ImGui::Button("Open this model")) {
      try {
        open_model(s);
      } catch (const std::exception& e) {
        s.set_error(e.what());
      }
    }
    ui::mark_item("train_open");
    if (ImGui::IsItemHovered())
      ImGui::SetTooltip("Show the weights of now in every other view (training goes on here).");
    ImGui::SameLine();
    if (ImGui::Button("Save")) save_download();
    ui::mark_item("train_save");
    if (ImGui::IsItemHovered())
      ImGui::SetTooltip("Save the model as a folder <run>/ with model.safetensors, config.json and tokenizer.json, "
                        "in a folder you pick (where the browser lets a page write one; elsewhere three downloads "
                        "<run>.model.safetensors, ...). The folder, or the .safetensors file alone (it carries its "
                        "config and tokenizer), opens in this page and in `circuitscope`.");
    ImGui::SameLine();
    if (ImGui::Button("Keep snapshot")) {
      try {
        keep_snapshot();
      } catch (const std::exception& e) {
        s.set_error(e.what());
      }
    }
    ui::mark_item("train_snapshot");
    if (ImGui::IsItemHovered())
      ImGui::SetTooltip("Keep the weights of this update, to open later from the snapshots (each evaluation keeps "
                        "one too).");
    if (!run_->snapshots().empty()) {
      ImGui::SameLine();
      ImGui::SetNextItemWidth(fs * 12.f);
      if (ImGui::BeginCombo("##snapshot", "open a snapshot...")) {
        for (const TrainSnapshot& x : run_->snapshots())
          if (ImGui::Selectable(ui::fmt("update %lld", static_cast<long long>(x.step)).c_str())) {
            try {
              open_model(s, x.step);
            } catch (const std::exception& e) {
              s.set_error(e.what());
            }
          }
        ImGui::EndCombo();
      }
      if (ImGui::IsItemHovered())
        ImGui::SetTooltip("The weights at each evaluation, and those you kept, are here: open 'before' and "
                          "'after' the phase change.");
    }
  }
  if (!has_run) return;

  const TrainRun& r = *run_;
  const train::TrainConfig& c = r.config();
  const float frac = float(double(r.step()) / double(std::max<int64_t>(1, c.steps)));
  ImGui::ProgressBar(frac, ImVec2(std::min(ImGui::GetContentRegionAvail().x, fs * 40.f), 0.f),
                     ui::fmt("update %lld of %lld", static_cast<long long>(r.step()),
                             static_cast<long long>(c.steps)).c_str());
  const std::string rate = st == Status::running ? ui::fmt("%.1f updates/s, ", steps_per_s()) : std::string();
  ImGui::Text("%s: %s%.0f tokens/s while updating (%d x %d tokens per update)", status_name(st), rate.c_str(),
              r.tokens_per_s(), c.batch, c.model.n_ctx);
  if (st == Status::failed) ImGui::TextColored(ImVec4(0.9f, 0.4f, 0.3f, 1.f), "%s", failure_.c_str());
  const auto pc = r.phase_change_step();
  if (!r.evals().empty()) {
    const TrainEval& e = r.evals().back();
    ImGui::Text("best prefix-matching score %.2f at update %lld%s", e.best_prefix_matching(),
                static_cast<long long>(e.step),
                pc ? ui::fmt("; the phase change came by update %lld", static_cast<long long>(*pc)).c_str()
                   : "; no phase change yet");
  }

  // ---- plots ----
  const float xmax = float(std::max<int64_t>(1, c.steps));
  std::vector<float> markers;
  if (pc) markers.push_back(float(*pc));
  const float two = ImGui::GetContentRegionAvail().x;
  const bool side_by_side = two > fs * 60.f;
  const float pw = side_by_side ? (two - ImGui::GetStyle().ItemSpacing.x) * 0.5f - 1.f : std::min(two, fs * 40.f);
  // A plot's title, wrapped to the plot's width (so two plots fit side by side).
  const auto plot_title = [pw](const char* text) {
    ImGui::PushTextWrapPos(ImGui::GetCursorPosX() + pw);
    ImGui::TextWrapped("%s", text);
    ImGui::PopTextWrapPos();
  };

  widgets::LinePlot loss;
  {
    widgets::LineSeries raw, avg, held;
    for (size_t i = 0; i < r.losses().size(); ++i) raw.x.push_back(float(i + 1));
    raw.y = r.losses();
    raw.color = IM_COL32(150, 150, 150, 110);
    raw.width = 1.f;
    avg.label = "training loss (mean of 20 updates)";
    avg.x = raw.x;
    avg.y = smoothed(r.losses(), 20);
    avg.color = widgets::series_color(0);
    held.label = "held-out loss";
    held.color = widgets::series_color(1);
    held.width = 2.f;
    for (const TrainEval& e : r.evals())
      if (e.heldout_loss) {
        held.x.push_back(float(e.step));
        held.y.push_back(float(*e.heldout_loss));
      }
    float top = std::log(float(c.model.d_vocab)) * 1.1f;
    for (float v : r.losses()) top = std::max(top, std::min(v, top * 2.f));
    loss.series = {raw, avg, held};
    loss.xmax = xmax;
    loss.ymax = std::ceil(top);  // a whole number of nats: a short axis label
    loss.x_title = "update";
    loss.y_title = "loss (nats)";
    loss.title = "training and held-out loss";
    loss.markers = markers;
    loss.marker_label = "phase change";
    loss.width = pw;
    loss.mark = "train_loss_plot";
  }
  widgets::LinePlot icl;
  {
    widgets::LineSeries line;
    line.label = "in-context learning score";
    line.color = widgets::series_color(2);
    line.width = 2.f;
    float lo = 0.f, hi = 0.5f;
    for (const TrainEval& e : r.evals())
      if (e.icl_score) {
        line.x.push_back(float(e.step));
        line.y.push_back(float(*e.icl_score));
        lo = std::min(lo, line.y.back());
        hi = std::max(hi, line.y.back());
      }
    icl.series = {line};
    icl.xmax = xmax;
    icl.ymin = std::floor(lo * 2.f - 0.2f) / 2.f;  // a margin, so the line never runs along the box
    icl.ymax = std::ceil(hi * 2.f + 0.2f) / 2.f;
    icl.x_title = "update";
    icl.y_title = "ICL score";
    icl.title = "in-context learning score";
    icl.markers = markers;
    icl.width = pw;
    icl.mark = "train_icl_plot";
  }
  ImGui::BeginGroup();
  plot_title("Loss: the training batches and the held-out sequences");
  widgets::line_plot("loss", loss);
  ImGui::EndGroup();
  if (side_by_side) ImGui::SameLine();
  ImGui::BeginGroup();
  plot_title("In-context learning score: loss early in a sequence minus loss late in it (positive: the model "
             "uses the context)");
  widgets::line_plot("icl", icl);
  ImGui::EndGroup();

  for (int which = 0; which < 2; ++which) {
    widgets::LinePlot hp;
    hp.series = head_lines(r, which == 0);
    hp.xmax = xmax;
    hp.x_title = "update";
    hp.y_title = which == 0 ? "prefix matching" : "previous token";
    hp.title = which == 0 ? "prefix-matching score of each head" : "previous-token score of each head";
    hp.markers = markers;
    hp.marker_label = "phase change";
    hp.width = pw;
    hp.mark = which == 0 ? "train_prefix_plot" : "train_prev_plot";
    if (which == 1 && side_by_side) ImGui::SameLine();
    ImGui::BeginGroup();
    plot_title(which == 0 ? "Prefix matching of each head (an induction head attends to the token after the "
                            "earlier copy of the current one)"
                          : "Previous-token score of each head (a previous-token head attends to the token just "
                            "before)");
    widgets::line_plot(which == 0 ? "pm" : "prev", hp);
    ImGui::EndGroup();
  }

  // ---- a head's attention on the probe ----
  if (r.evals().empty()) return;
  const TrainEval& e = r.evals().back();
  const HeadId h = shown_head();
  ImGui::SetNextItemWidth(fs * 14.f);
  const std::string current = sel_.layer < 0 ? "best prefix matching (" + head_text(h.layer, h.head) + ")"
                                             : head_text(h.layer, h.head);
  if (ImGui::BeginCombo("head", current.c_str())) {
    if (ImGui::Selectable("best prefix matching", sel_.layer < 0)) set_head(-1, 0);
    for (int l = 0; l < c.model.n_layers; ++l)
      for (int hh = 0; hh < c.model.n_heads; ++hh)
        if (ImGui::Selectable(head_text(l, hh).c_str(), sel_.layer == l && sel_.head == hh)) set_head(l, hh);
    ImGui::EndCombo();
  }
  const size_t idx = size_t(h.layer) * size_t(c.model.n_heads) + size_t(h.head);
  if (idx >= e.patterns.size()) return;
  ImGui::Text("attention of head %s at update %lld on a fixed sequence (random tokens repeated)",
              head_text(h.layer, h.head).c_str(), static_cast<long long>(e.step));
  const RowMat& A = e.patterns[idx];
  const std::vector<int>& seq = r.probe();
  widgets::Heatmap hm;
  hm.rows = int(A.rows());
  hm.cols = int(A.cols());
  hm.value = [&A](int i, int j) { return A(i, j); };
  hm.row_label = [&seq, &r](int i) { return r.token_name(seq[size_t(i)]); };
  hm.col_label = hm.row_label;
  hm.row_title = "query position (destination)";
  hm.col_title = "key position (source)";
  hm.units = "attention";
  hm.vmax = 1.f;
  hm.mark = "train_pattern";
  hm.title = "attention of head " + head_text(h.layer, h.head) + " (training)";
  widgets::heatmap("##train_pattern", hm);
}

}  // namespace cs::app
