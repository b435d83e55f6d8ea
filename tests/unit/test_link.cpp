// Links (app/link.h): the page's state as a URL query. A link made from one
// page, opened in a fresh page with the same model, restores every view's
// selection and the tab; values equal to what the page shows without a link
// are left out; hostile values give a reason and a fallback, never a crash;
// a link waits for the model it names.
#include <gtest/gtest.h>

#include <string>

#include "app/app.h"
#include "app/composition_view.h"
#include "app/head_view.h"
#include "app/link.h"
#include "app/prompt_view.h"
#include "app/virtual_heads_view.h"
#include "app_test_helpers.h"
#include "io/model_io.h"
#include "test_models.h"

namespace cs::app {
namespace {

Model model_2l() { return testmodels::small_ln_model(2, 64, 21, 0.6f); }

// Loads m into a as the bundled model `id`.
void load_as(App& a, const Model& m, const std::string& id) {
  apptest::load(a, m, 0.05, testmodels::wordlevel_tokenizer(m.config().d_vocab), id);
  ASSERT_EQ(a.session().active()->id, id);
}

TEST(Link, EncodingRoundTripsAnyBytes) {
  for (const std::string t : {std::string("plain"), std::string("a b&c=d%e+f?g#h"), std::string("<script>alert(1)</script>"),
                              std::string("\xE3\x81\x82 \xF0\x9F\x98\x80"), std::string("line\nbreak\ttab"),
                              std::string("\"quoted\" 'x'"), std::string("")}) {
    const std::string e = url_encode(t);
    EXPECT_EQ(e.find_first_of("&=#?+ <>\"'\n"), std::string::npos) << e;
    EXPECT_EQ(url_decode(e), t);
  }
  EXPECT_EQ(url_decode("a+b%20c%zz%4"), "a b c%zz%4") << "a bad escape is kept as it is";
}

TEST(Link, NothingChangedGivesJustTheModel) {
  App a;
  EXPECT_EQ(link_query(a), "") << "no model, no link";
  load_as(a, model_2l(), "attn-only-2l");
  EXPECT_EQ(link_query(a), "model=attn-only-2l");
}

TEST(Link, OpeningALinkRestoresEveryViewAndTheTab) {
  App a;
  load_as(a, model_2l(), "attn-only-2l");
  Session& s = a.session();
  a.view<HeadView>()->select_head(s, 1, 2);
  a.view<HeadView>()->select_ov_source(s, 7);
  a.view<VirtualHeadsView>()->select_virtual_head(s, 0, 1, 1, 2);
  a.view<CompositionView>()->set_previous_head(s, 0, 2);
  a.view<PromptView>()->set_selection_json(
      s, Json{{"text", "t1 t2 & t3=t4 <b>t5</b>\nt6"}, {"position", 3}, {"head", "1.1"}, {"ablate", {"0.2", "1.0"}}});
  a.set_open_view("virtual");
  const std::string q = link_query(a);
  EXPECT_NE(q.find("view=virtual"), std::string::npos) << q;
  EXPECT_NE(q.find("head.layer=1"), std::string::npos) << q;
  EXPECT_NE(q.find("virtual.earlier=0.1"), std::string::npos) << q;
  EXPECT_EQ(q.find("head.k="), std::string::npos) << "a value equal to the baseline is left out: " << q;
  EXPECT_EQ(q.find("heads."), std::string::npos) << "an untouched view is left out: " << q;

  App b;
  load_as(b, model_2l(), "attn-only-2l");
  const Link link = parse_link("?" + q, b);
  EXPECT_TRUE(link.problems.empty()) << link.problems.front();
  EXPECT_EQ(link.model, "attn-only-2l");
  b.open_link(link);
  EXPECT_EQ(b.session().error(), "");
  for (const auto& v : a.views()) EXPECT_EQ(b.find(v->id())->selection_json(), v->selection_json()) << v->id();
  EXPECT_EQ(b.take_requested_tab(), "virtual");
  b.set_open_view("virtual");
  EXPECT_EQ(link_query(b), q) << "the restored page links to itself";
  // Back to a link with just the model (as the history's first entry): every
  // view at its baseline again, the first tab.
  b.open_link(parse_link("model=attn-only-2l", b));
  for (const auto& v : b.views()) EXPECT_EQ(v->selection_json(), b.baseline_selection(v->id())) << v->id();
  EXPECT_EQ(b.take_requested_tab(), b.views().front()->id());
}

TEST(Link, HostileValuesGiveAReasonAndAFallback) {
  App a;
  load_as(a, model_2l(), "attn-only-2l");
  Session& s = a.session();
  const Json head_before = a.view<HeadView>()->selection_json();
  const std::string long_text(kMaxTextBytes + 10, 'x');
  const std::string q = "view=%3Cscript%3E&nosuch.x=1&head.nosuch=2&head.layer=one&head.k=5&prompt.text=" +
                        url_encode(long_text) + "&virtual.earlier=1.0&virtual.later=0.1&composition.prev=9.9";
  const Link link = parse_link(q, a);
  ASSERT_EQ(link.problems.size(), 4u);  // the view, the unknown view and field, the bad number
  EXPECT_NE(link.problems[0].find("is not a view"), std::string::npos) << link.problems[0];
  EXPECT_NE(link.problems[1].find("nosuch.x"), std::string::npos) << link.problems[1];
  EXPECT_NE(link.problems[2].find("no setting \"nosuch\""), std::string::npos) << link.problems[2];
  EXPECT_NE(link.problems[3].find("head.layer \"one\" is not a number"), std::string::npos) << link.problems[3];
  EXPECT_TRUE(link.view.empty());
  a.open_link(link);
  const std::string& e = s.error();
  EXPECT_NE(e.find("text"), std::string::npos) << "the oversized prompt is refused: " << e;
  EXPECT_NE(e.find("must be in an earlier layer"), std::string::npos) << "[" << e << "]";
  EXPECT_NE(e.find("prev"), std::string::npos) << e;
  // Refused views show their baseline; the good field of a view is kept.
  EXPECT_EQ(a.view<PromptView>()->selection_json(), a.baseline_selection("prompt"));
  EXPECT_EQ(a.view<VirtualHeadsView>()->selection_json(), a.baseline_selection("virtual"));
  EXPECT_EQ(a.view<HeadView>()->selection().k, 5);
  EXPECT_EQ(a.view<HeadView>()->selection().layer, head_before["layer"].get<int>());
  // A token id beyond the vocabulary is clamped to it; a head out of range too.
  a.open_link(parse_link("head.ov_source=99999&head.layer=42", a));
  EXPECT_EQ(a.view<HeadView>()->selection().ov_source, s.vocab() - 1);
  EXPECT_EQ(a.view<HeadView>()->selection().layer, 1);
  // An oversized link is ignored as a whole.
  const Link huge = parse_link("head.k=3&prompt.text=" + std::string(kMaxLinkBytes, 'y'), a);
  EXPECT_TRUE(huge.selections.empty());
  ASSERT_EQ(huge.problems.size(), 1u);
  EXPECT_NE(huge.problems[0].find("bytes"), std::string::npos);
}

TEST(Link, ALinkWaitsForTheModelItNames) {
  App a;
  load_as(a, model_2l(), "attn-only-2l");
  a.open_link(parse_link("model=file:model.safetensors&head.layer=1&head.head=2", a));
  EXPECT_EQ(a.link_waiting_for(), "file:model.safetensors") << "the dropped files are not here yet";
  EXPECT_EQ(a.view<HeadView>()->selection().head, 0);
  load_as(a, testmodels::small_ln_model(2, 64, 22, 0.6f), "other");
  EXPECT_EQ(a.link_waiting_for(), "file:model.safetensors") << "another model does not take it";
  load_as(a, model_2l(), "file:model.safetensors");
  EXPECT_EQ(a.link_waiting_for(), "");
  EXPECT_EQ(a.view<HeadView>()->selection().layer, 1);
  EXPECT_EQ(a.view<HeadView>()->selection().head, 2);
}

// Two models whose tokenizer knows "the": the Head view starts both on it.
// A link made after switching from one to the other, with that field set
// back by hand, must carry it: what a fresh page shows for the second model
// is the view's start on it, not "whatever stayed the same".
TEST(Link, ALinkMadeAfterAnotherModelRestoresInAFreshPage) {
  const Model first = model_2l(), second = testmodels::small_ln_model(2, 64, 22, 0.6f);
  std::string tok = testmodels::wordlevel_tokenizer(first.config().d_vocab);
  tok.replace(tok.find("\"t5\""), 4, "\"the\"");
  App a;
  apptest::load(a, first, 0.05, tok, "attn-only-2l");
  apptest::load(a, second, 0.05, tok, "file:model.safetensors");
  Session& s = a.session();
  ASSERT_EQ(s.familiar_token(), 5);
  EXPECT_EQ(link_query(a), "model=file:model.safetensors") << "nothing changed: just the model";
  a.view<HeadView>()->set_selection_json(s, Json{{"layer", 1}, {"head", 1}});  // the explorers' tokens back to 0
  ASSERT_EQ(a.view<HeadView>()->selection().ov_source, 0);
  const std::string q = link_query(a);
  EXPECT_NE(q.find("head.ov_source=0"), std::string::npos) << q;

  App b;
  apptest::load(b, second, 0.05, tok, "file:model.safetensors");
  b.open_link(parse_link(q, b));
  EXPECT_EQ(b.view<HeadView>()->selection_json(), a.view<HeadView>()->selection_json());
  EXPECT_EQ(link_query(b), q);
}

// A link that opens the Prompt tab sets the Head view's selection without
// starting its vocabulary scans behind the open tab; they start when the
// Head tab is shown, for the link's head.
TEST(Link, TabsALinkDoesNotOpenWaitForTheirShowing) {
  App a;
  load_as(a, model_2l(), "attn-only-2l");
  Session& s = a.session();
  a.show(*a.find("head"));  // the Head view's scans have run once, for head 0.0
  apptest::run_jobs(s);
  ASSERT_TRUE(a.view<HeadView>()->ov_outs().has());
  a.open_link(parse_link("model=attn-only-2l&view=prompt&head.layer=1&head.head=1&prompt.text=t1%20t2%20t3", a));
  EXPECT_EQ(a.view<HeadView>()->selection().layer, 1);
  EXPECT_EQ(a.view<HeadView>()->selection().head, 1);
  EXPECT_TRUE(a.view<HeadView>()->deferred());
  EXPECT_FALSE(s.jobs().running(HeadView::kOvOutsSlot)) << "nothing scans behind the open tab";
  EXPECT_TRUE(s.jobs().running(PromptView::kRunSlot)) << "the open tab works at once";
  apptest::run_jobs(s);
  EXPECT_EQ(a.view<HeadView>()->ov_outs().key().layer, 0) << "the Head view still holds its old (stale) lists";
  a.show(*a.find("head"));
  EXPECT_FALSE(a.view<HeadView>()->deferred());
  apptest::run_jobs(s);
  EXPECT_EQ(a.view<HeadView>()->ov_outs().key().layer, 1);
  EXPECT_EQ(a.view<HeadView>()->ov_outs().key().head, 1);
}

}  // namespace
}  // namespace cs::app
