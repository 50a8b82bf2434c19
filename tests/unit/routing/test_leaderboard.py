"""Priors for models named otherwise than the priors file (learned/leaderboard.py): the shipped
LMArena snapshot is found by looser names, never by a guess, and a found row is named in the
profile's source; trained models named otherwise get their trained profile."""
from __future__ import annotations

import numpy as np
import pytest

from routerone.routing.learned.leaderboard import BoardRow, Leaderboard, OpenBoard, OpenRow, canonical, loose_tokens
from routerone.routing.learned.profiles import Prior, ProfileRouter


@pytest.fixture(scope="module")
def board() -> Leaderboard:
    return Leaderboard.load()


def test_the_shipped_snapshot_is_whole(board):
    assert len(board.rows) == 266
    assert all(np.isfinite(r.score) and 800 < r.score < 1500 for r in board.rows)


@pytest.mark.parametrize("name, row", [
    ("claude-3-5-sonnet-20240620", "Claude 3.5 Sonnet (20240620)"),      # exact, a dated row
    ("claude-3-5-sonnet", "Claude 3.5 Sonnet (20241022)"),               # undated: the newest
    ("claude-3-haiku-20240307", "Claude 3 Haiku"),                       # dated name, undated row
    ("gpt4_1106_preview", "GPT-4-1106-preview"),                         # gpt4 = gpt 4, _ = -
    ("claude-v2", "Claude-2.0"),                                         # v dropped, x.0 = x
    ("claude-instant-v1", "Claude-Instant-1"),
    ("meta/llama-2-70b-chat", "Llama-2-70B-chat"),                       # vendor prefix
    ("Llama-2-7b-chat-hf", "Llama-2-7B-chat"),                           # -hf
    ("llama3.1:8b", "Meta-Llama-3.1-8B-Instruct"),                       # an Ollama tag, meta- dropped
    ("WizardLM/WizardLM-13B-V1.2", "WizardLM-13b-v1.2"),
    ("mistralai/mixtral-8x7b-chat", "Mixtral-8x7B-Instruct-v0.1"),       # the start of one row
    ("command-r-plus", "Command R+ (08-2024)"),                          # + is plus; MM-YYYY dates
    ("command-r", "Command R (08-2024)"),
    ("deepseek-v2", "Deepseek-v2-API-0628"),                             # not v2.5 (a version is not extended)
])
def test_looser_names_find_their_row(board, name, row):
    found = board.find(name)
    assert found is not None and found.name == row


@pytest.mark.parametrize("name", [
    "gpt-4",                          # the start of gpt-4-0314, -0613, -1106-preview, gpt-4o ...
    "mistralai/mistral-7b-chat",      # v0.1 and v0.2
    "mistral-large",                  # 2402, 2407, 2411 (not dates: no newest)
    "llama3",
    "gpt", "claude", "", "   ", "/", "\x00", "a" * 10_000,
    "my-private-model-a",
    "WizardLMTeam/WizardLM-13B-V1.0",  # not v1.2: a prefix never extends a version number
])
def test_ambiguous_or_unknown_names_find_nothing(board, name):
    assert board.find(name) is None


def test_rows_that_disagree_without_dates_are_no_match():
    b = Leaderboard([BoardRow("Foo-7B-Chat", 1100), BoardRow("Foo-7B-Instruct", 1200),
                     BoardRow("Bar (20240101)", 1000), BoardRow("Bar (20240601)", 1050)])
    assert b.find("foo-7b") is None                      # chat and instruct are both dropped
    assert b.find("bar").score == 1050                   # dated: the newest
    assert b.find("bar-20240101").score == 1000


def test_canonical_and_loose_tokens():
    assert canonical("Claude 3.5 Sonnet (20241022)") == "claude-3-5-sonnet-20241022"
    assert canonical("openai/GPT-4o") == "gpt-4o"
    assert loose_tokens("Mixtral-8x7B-Instruct-v0.1") == ("mixtral", "8", "x", "7", "b", "0", "1")
    assert loose_tokens("claude-2.0") == ("claude", "2")
    assert loose_tokens("gpt-4-0314") == ("gpt", "4", "0314")


def test_a_profile_found_on_the_board_names_its_row_and_maps_its_score(board):
    r = ProfileRouter.load()
    p = r.profile("claude-v2")
    assert p.source == "prior:lmarena-text-2025-08-04 as 'Claude-2.0'"
    a = r.artefact
    z = (1158 - a.prior_center) / a.prior_scale
    np.testing.assert_allclose(p.embedding, a.prior_map[0] + a.prior_map[1] * z)
    assert r.profile("my-private-model-a").source == "default"
    # a trained model named otherwise is that trained model
    mixtral = r.profile("mistralai/mixtral-8x7b-chat")
    assert mixtral.source == "trained as 'mistralai/Mixtral-8x7B-Instruct-v0.1'"
    np.testing.assert_allclose(mixtral.embedding, r.profile("Mixtral-8x7B-Instruct-v0.1").embedding)
    assert r.profile("Mixtral-8x7B-Instruct-v0.1").source == "trained"


def test_the_priors_file_wins_and_given_priors_use_no_board_unless_asked():
    shipped = ProfileRouter.load()
    assert shipped.profile("gpt-4o").source == "prior:lmarena-text-2025-08-04"      # the file's entry
    own = ProfileRouter(shipped.artefact, priors={"claude-v2": Prior(1300, "mine")})
    assert own.profile("claude-v2").source == "prior:mine"
    assert own.profile("claude-instant-v1").source == "default"
    both = ProfileRouter(shipped.artefact, priors={}, board=Leaderboard.load())
    assert both.profile("claude-instant-v1").source.startswith("trained as 'claude-instant-1'")


# --- open models LMArena never rated: the Open LLM Leaderboard v2 snapshot (OpenBoard) ---

@pytest.fixture(scope="module")
def open_board(board) -> OpenBoard:
    return OpenBoard.load(board)


def test_the_open_board_is_whole_and_calibrated_on_shared_chat_models(open_board):
    assert len(open_board.rows) == 4573          # 4,576 rows: one flagged, two without an org (`gpt2`)
    assert open_board.pairs == 58
    assert open_board.slope > 0 and 0.8 < open_board.correlation < 0.9
    # a better average is a better arena-scale score
    assert open_board.find("Qwen/Qwen2.5-72B-Instruct").score > open_board.find("Qwen/Qwen2.5-7B-Instruct").score


@pytest.mark.parametrize("name, hf_id", [
    ("Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B-Instruct"),               # exact id
    ("qwen/qwen2.5-7b-instruct", "Qwen/Qwen2.5-7B-Instruct"),               # case
    ("Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B-Instruct"),                    # one upload of that name
    ("mistralai/Mistral-7B-Instruct-v0.3", "mistralai/Mistral-7B-Instruct-v0.3"),
    ("gemma-2-9b-it", "google/gemma-2-9b-it"),   # re-uploaded by others: the original has > 2x their likes
])
def test_open_models_are_found_by_id_or_by_their_original_upload(open_board, name, hf_id):
    assert open_board.find(name).name == hf_id


@pytest.mark.parametrize("name", ["nvidia/llama3-chatqa-1.5-8b", "my-private-model-a", "gpt-4o", "", "/",
                                  "\x00", "a" * 10_000])
def test_names_not_on_the_open_board_find_nothing(open_board, name):
    assert open_board.find(name) is None


def test_open_board_rules_on_made_up_rows():
    arena = Leaderboard([BoardRow(f"Model-{i}B-Chat", 1000 + 10 * i) for i in range(12)])
    rows = [OpenRow(f"org/Model-{i}B-Chat", 20.0 + i, 100, True) for i in range(12)]
    rows += [OpenRow("lab/New-1B", 30.0, 5, False), OpenRow("lab/New-1B", 32.0, 5, False),   # two precisions
             OpenRow("copy/New-1B", 10.0, 2, False),                                         # a re-upload
             OpenRow("a/Twin-1B", 25.0, 10, False), OpenRow("b/Twin-1B", 26.0, 6, False)]    # no clear original
    ob = OpenBoard(rows, arena)
    assert ob.pairs == 12 and ob.slope == pytest.approx(10.0) and ob.intercept == pytest.approx(800.0)
    assert ob.correlation == pytest.approx(1.0)
    assert ob.find("lab/New-1B").score == pytest.approx(800 + 10 * 31.0)       # the mean of its two rows
    assert ob.find("new-1b").name == "lab/New-1B"                             # 5 likes > 2 x 2
    assert ob.find("twin-1b") is None and ob.find("b/Twin-1B").score == pytest.approx(1060.0)
    too_few = OpenBoard(rows[:5] + rows[12:], arena)                          # 5 shared models: no line
    assert too_few.find("lab/New-1B") is None


def test_an_open_model_gets_its_mapped_prior_and_arena_rated_ones_keep_theirs(open_board):
    r = ProfileRouter.load()
    p = r.profile("Qwen/Qwen2.5-7B-Instruct")
    assert p.source == "prior:open-llm-leaderboard-v2-2025-03-21 as 'Qwen/Qwen2.5-7B-Instruct'"
    a = r.artefact
    z = (open_board.find("Qwen/Qwen2.5-7B-Instruct").score - a.prior_center) / a.prior_scale
    np.testing.assert_allclose(p.embedding, a.prior_map[0] + a.prior_map[1] * z)
    assert r.profile("meta-llama/Llama-3.1-8B-Instruct").source.startswith("prior:lmarena")   # LMArena first
    assert r.profile("nvidia/llama3-chatqa-1.5-8b").source == "default"
