// The Prompt view's drawing (page build only; logic in prompt_view.cpp): the
// text box, the tokens coloured by the chosen head's attention from the
// focused token, the head chooser, the pattern, the predictions (full and
// ablated), the logit split by path and the ablation ticks.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "app/colormap.h"
#include "app/prompt_view.h"
#include "app/session_ui.h"
#include "app/ui.h"
#include "app/widgets.h"
#include "imgui.h"

namespace cs::app {

namespace {

// The predictions at one position as a table of probabilities; returns the clicked token.
std::optional<int> predictions_table(const char* id, const Session& s, const LogitSummary& sum, int position) {
  if (position < 0 || size_t(position) >= sum.positions()) return std::nullopt;
  std::vector<widgets::RankedRow> rows;
  for (int i = 0; i < sum.k; ++i) {
    const float p = std::exp(sum.top_log_prob(size_t(position), i));
    rows.push_back(widgets::RankedRow{sum.top_id(size_t(position), i), p, p, ui::fmt("%.1f%%", 100.0 * double(p))});
  }
  widgets::RankedTable t;
  t.label_header = "next token";
  t.value_header = "probability";
  t.bar_header = "";
  t.label = [&s](int tok) { return s.token_display(tok); };
  t.tooltip = [&s](const widgets::RankedRow& row) {
    session_ui::token_tooltip(s, row.id);
    ImGui::Text("probability %.4f", double(row.value));
    ImGui::TextDisabled("click: split this token's logit by path");
  };
  t.max_visible_rows = 10;
  if (auto i = widgets::ranked_table(id, t, rows)) return rows[*i].id;
  return std::nullopt;
}

}  // namespace

void PromptView::draw(Session& s) {
  ui::heading("Prompt: the model on your text");
  ui::explain(
      "Type or paste text and press Run. Hover a token to see where the chosen head looks from it (its attention to "
      "each earlier token); click a token to lock it there and read the model's predictions for the next token; "
      "click it again to unlock. Tick heads to ablate them: their outputs are removed while every attention pattern "
      "stays as it was, so you see what those heads themselves contributed.");
  const LoadedModel* lm = session_ui::shown_for_view(s, "run it on a prompt", true);
  if (!lm) return;
  const ModelConfig& c = lm->model.config();

  // ---- the text ----
  if (widgets::text_with_run("prompt", text_box_, sel_.text, 6.f,
                             "Ctrl+Enter in the text runs it too. The text is read as `circuitscope run --text` reads "
                             "it: the tokenizer's BOS first (when it has one), then the text's tokens, at most n_ctx "
                             "of them.")) {
    try {
      set_text(s, text_box_.edit);
    } catch (const std::exception& e) {
      s.set_error(e.what());
    }
  }
  const float width = ImGui::GetContentRegionAvail().x;
  session_ui::job_progress(s, kRunSlot);
  if (!run_.has()) return;
  const PromptRun& r = *run_.value();
  widgets::Faded faded(run_.freshness(sel_.text, s.generation(), s.jobs()).faded());
  const int T = int(r.ids.size());
  const int H = c.n_heads;
  const size_t idx = size_t(sel_.layer) * size_t(H) + size_t(sel_.head);
  if (idx >= r.cache.pattern.size()) return;
  const RowMat& A = r.cache.pattern[idx];
  const widgets::TokenText tt = session_ui::token_text(s);
  if (r.truncated) ImGui::TextColored(ImVec4(0.9f, 0.6f, 0.2f, 1.f), "Only the first %d tokens are read (n_ctx).", T);
  ImGui::Text("%d tokens; mean loss %.3f nats per prediction", T, double(r.summary.loss()));

  // ---- the tokens, coloured by the chosen head's attention from the focus ----
  const int f = focus();
  ImGui::Text("head %s: attention from %s", head_text(sel_.layer, sel_.head).c_str(),
              f >= 0 ? ui::fmt("token %d (%s)%s", f, tt.display(r.ids[size_t(f)]).c_str(),
                               sel_.position == f ? ", locked" : "")
                           .c_str()
                     : "the token under the mouse (hover one)");
  int hovered = -1;
  // A long prompt scrolls in a box of a few lines (ImGui skips drawing what is scrolled away).
  const float strip_w = std::min(width, ImGui::GetFontSize() * 60.f);
  const float strip_h = std::min(ImGui::GetFrameHeightWithSpacing() * 8.f,
                                 ImGui::GetFrameHeightWithSpacing() * (1.f + float(T) / 12.f));
  ImGui::BeginChild("##tokens", ImVec2(strip_w, strip_h), false);
  const float right = ImGui::GetCursorScreenPos().x + ImGui::GetContentRegionAvail().x;
  ImGui::PushStyleVar(ImGuiStyleVar_ItemSpacing, ImVec2(2.f, 2.f));
  for (int i = 0; i < T; ++i) {
    const std::string label = tt.display(r.ids[size_t(i)]);
    const float w = ImGui::CalcTextSize(label.c_str()).x + ImGui::GetStyle().FramePadding.x * 2.f;
    if (i > 0) {
      ImGui::SameLine();
      if (ImGui::GetCursorScreenPos().x + w > right) ImGui::NewLine();
    }
    // Background: attention from the focus to token i (0..1 on the red half of the scale).
    const float a = f >= 0 && i <= f ? A(f, i) : 0.f;
    ImGui::PushID(i);
    ImGui::PushStyleColor(ImGuiCol_Button, diverging_u32(a, f >= 0 ? 1.f : 0.35f));
    ImGui::PushStyleColor(ImGuiCol_Text, text_on_diverging(a));
    const bool locked = sel_.position == i;
    if (locked) ImGui::PushStyleVar(ImGuiStyleVar_FrameBorderSize, 2.f);
    if (ImGui::Button(label.c_str())) click_token(s, i);
    if (locked) ImGui::PopStyleVar();
    ImGui::PopStyleColor(2);
    if (ImGui::IsItemHovered()) {
      hovered = i;
      ImGui::BeginTooltip();
      session_ui::token_tooltip(s, r.ids[size_t(i)]);
      ImGui::Text("position %d", i);
      if (f >= 0 && i <= f) ImGui::Text("attention from position %d: %.3f", f, double(A(f, i)));
      ImGui::TextDisabled(locked ? "click: unlock" : "click: lock here and show the predictions after it");
      ImGui::EndTooltip();
    }
    ui::mark_item(("prompt_token_" + std::to_string(i)).c_str());
    ImGui::PopID();
  }
  ImGui::PopStyleVar();
  ImGui::EndChild();
  hover_token(hovered);

  // ---- the head chooser (and the ablation ticks) ----
  ImGui::Spacing();
  ImGui::TextUnformatted("heads: click one to draw its attention; tick to ablate it");
  const float row_right = ImGui::GetCursorScreenPos().x + ImGui::GetContentRegionAvail().x;
  for (int l = 0; l < c.n_layers; ++l) {
    ImGui::Text("layer %d", l);
    const float indent = ImGui::GetItemRectMax().x + ImGui::GetStyle().ItemSpacing.x;
    float group_w = 0.f;  // the widest head group so far: where a row wraps
    for (int h = 0; h < H; ++h) {
      ImGui::SameLine();
      if (h > 0 && ImGui::GetCursorScreenPos().x + group_w > row_right) {
        ImGui::NewLine();
        ImGui::SetCursorScreenPos(ImVec2(indent, ImGui::GetCursorScreenPos().y));
      }
      ImGui::BeginGroup();
      ImGui::PushID(l * H + h);
      const bool chosen = l == sel_.layer && h == sel_.head;
      if (chosen) ImGui::PushStyleColor(ImGuiCol_Button, ImGui::GetStyleColorVec4(ImGuiCol_ButtonActive));
      if (ImGui::Button(head_text(l, h).c_str())) set_head(l, h);
      if (chosen) ImGui::PopStyleColor();
      ui::mark_item(("prompt_head_" + head_text(l, h)).c_str());
      ImGui::SameLine(0.f, 1.f);
      bool ablated = std::binary_search(sel_.ablate.begin(), sel_.ablate.end(), HeadId{l, h});
      if (ImGui::Checkbox("##ablate", &ablated)) toggle_ablate(s, HeadId{l, h});
      if (ImGui::IsItemHovered()) ImGui::SetTooltip("ablate head %d.%d (its patterns kept, its output removed)", l, h);
      ui::mark_item(("prompt_ablate_" + head_text(l, h)).c_str());
      session_ui::head_badges(s, l, h, "prompt");
      ImGui::PopID();
      ImGui::EndGroup();
      group_w = std::max(group_w, ImGui::GetItemRectSize().x);
    }
  }
  if (!sel_.ablate.empty()) {
    if (ImGui::SmallButton("clear ablation")) clear_ablate(s);
  }

  const int p = position();
  const bool two_columns = width > ImGui::GetFontSize() * 56.f;
  if (two_columns && !ImGui::BeginTable("##prompt_cols", 2, ImGuiTableFlags_SizingStretchSame | ImGuiTableFlags_BordersInnerV))
    return;
  if (two_columns) {
    ImGui::TableNextRow();
    ImGui::TableSetColumnIndex(0);
  }

  // ---- predictions at the position ----
  ImGui::Text("after token %d (%s)%s: the next token", p, tt.display(r.ids[size_t(p)]).c_str(),
              sel_.position >= 0 ? "" : ", the last (click a token for another)");
  if (p + 1 < T)
    ImGui::Text("actually next: %s (loss %.3f nats)", tt.display(r.ids[size_t(p) + 1]).c_str(),
                double(r.summary.losses()[size_t(p)]));
  if (auto tok = predictions_table("##top", s, r.summary, p)) set_token(s, *tok);
  ui::mark_item("prompt_top");
  if (!sel_.ablate.empty()) {
    std::string names;
    for (const HeadId& h : sel_.ablate) names += (names.empty() ? "" : ", ") + head_text(h.layer, h.head);
    ImGui::Text("with %s ablated:", names.c_str());
    session_ui::job_progress(s, kAblatedSlot);
    if (ablated_.has()) {
      widgets::Faded fa(ablated_.freshness(AblatedKey{sel_.text, sel_.ablate}, s.generation(), s.jobs()).faded());
      const LogitSummary& a = ablated_.value();
      ImGui::Text("mean loss %.3f nats (full model %.3f)", double(a.loss()), double(r.summary.loss()));
      if (auto tok = predictions_table("##top_ablated", s, a, p)) set_token(s, *tok);
      ui::mark_item("prompt_top_ablated");
    }
  }

  if (two_columns) ImGui::TableSetColumnIndex(1);
  // ---- the logit split ----
  session_ui::job_progress(s, kSplitSlot);
  if (split_.has()) {
    const PromptSplit& sp = split_.value();
    widgets::Faded fs(split_.freshness(SplitKey{sel_.text, p, split_token()}, s.generation(), s.jobs()).faded());
    ImGui::Text("logit of %s after token %d: %.3f, by path", tt.display(sp.token).c_str(), sp.position,
                double(sp.logit));
    ui::help_marker("With every attention pattern and LayerNorm scale frozen as they are on this text, the logit "
                    "is a sum over paths from the embedding to the unembedding: the direct path, one term per head, "
                    "one per virtual head (two heads in a row, e.g. 0.2 > 1.4), and the biases. They add up to the "
                    "logit exactly. `circuitscope paths` prints the same.");
    // The terms by size; ablated heads marked.
    std::vector<size_t> order(sp.terms.size());
    std::iota(order.begin(), order.end(), size_t(0));
    std::stable_sort(order.begin(), order.end(),
                     [&sp](size_t a, size_t b) { return std::abs(sp.contribution[a]) > std::abs(sp.contribution[b]); });
    float top = 0.f;
    for (float v : sp.contribution) top = std::max(top, std::abs(v));
    std::vector<widgets::RankedRow> rows;
    for (size_t i : order)
      rows.push_back(widgets::RankedRow{int(i), sp.contribution[i], top > 0.f ? sp.contribution[i] / top : 0.f,
                                        ui::fmt("%+.3f", double(sp.contribution[i]))});
    widgets::RankedTable t;
    t.label_header = "path";
    t.value_header = "logit";
    t.bar_header = "share";
    t.label = [&sp, this](int i) {
      const PathTerm& term = sp.terms[size_t(i)];
      bool ablated = false;
      for (const HeadId& h : term.heads)
        ablated = ablated || std::binary_search(sel_.ablate.begin(), sel_.ablate.end(), h);
      return term.name() + (ablated ? " (ablated)" : "");
    };
    t.tooltip = [&sp](const widgets::RankedRow& row) {
      const PathTerm& term = sp.terms[size_t(row.id)];
      ImGui::Text("%s: %+.4f", term.name().c_str(), double(row.value));
      if (term.kind == PathTerm::kHeads && term.heads.size() == 1)
        ImGui::TextUnformatted("the head's own output (embedding -> head -> unembedding)");
      else if (term.kind == PathTerm::kHeads)
        ImGui::TextUnformatted("a virtual head: the first head's output read by the second (V-composition)");
      else if (term.kind == PathTerm::kDirect)
        ImGui::TextUnformatted("embedding -> unembedding, no head (the bigram path)");
    };
    t.max_visible_rows = 14;
    t.id_column = false;
    widgets::ranked_table("##split", t, rows);
    ui::mark_item("prompt_split");
  }
  if (two_columns) ImGui::EndTable();

  // ---- the chosen head's pattern ----
  const int p0 = pattern_first(), n = p - p0 + 1;
  ImGui::Text("attention pattern of head %s (rows: the token attending; columns: the token attended to)%s",
              head_text(sel_.layer, sel_.head).c_str(),
              p0 > 0 ? ui::fmt("; positions %d to %d", p0, p).c_str() : "");
  widgets::Heatmap hm;
  hm.rows = n;
  hm.cols = n;
  hm.value = [&A, p0](int i, int j) { return A(p0 + i, p0 + j); };
  hm.row_label = [&r, &tt, p0](int i) { return tt.display(r.ids[size_t(p0 + i)]); };
  hm.col_label = [&r, &tt, p0](int j) { return tt.display(r.ids[size_t(p0 + j)]); };
  hm.row_title = "query position (destination)";
  hm.col_title = "key position (source)";
  hm.units = "attention";
  hm.vmax = 1.f;
  hm.click_hint = "click: lock this query position";
  hm.mark = "prompt_pattern";
  if (auto cell = widgets::heatmap("##prompt_pattern", hm)) click_token(s, p0 + cell->row);
}

}  // namespace cs::app
