"""Box2D environments (the ``box2d`` extra; skipped without it): LunarLander starts from its tuned entry (PPO and
TRPO on the discrete lander) or its family's defaults (the rest)."""
import pytest

import npgrad
from npgrad.tuned import FAMILIES, TUNED

pytest.importorskip("Box2D", reason="Box2D is an optional extra: pip install -e '.[box2d]'")


@pytest.mark.parametrize("algo, env_id, family", [("a2c", "LunarLander-v3", "discrete"),
                                                  ("ppo", "LunarLanderContinuous-v3", "continuous"),
                                                  ("a2c", "LunarLanderContinuous-v3", "continuous")])
def test_lunar_lander_without_a_tuned_entry_starts_from_its_familys_defaults(algo, env_id, family):
    agent = npgrad.ALGOS[algo](env_id)
    values = FAMILIES[family][algo][0]
    assert {name: getattr(agent.config, name) for name in values} == values, f"{algo} {env_id}: {agent.config}"
    assert agent.defaults_source.startswith(f"{family}-control family, no tuned entry for {env_id}")
    agent.learn(2 * agent.config.n_envs * agent.config.n_steps)  # two updates on the real environment
    assert agent.num_updates == 2 and agent.progress.failed_updates == 0


@pytest.mark.parametrize("algo", ["ppo", "trpo"])
def test_the_discrete_lander_starts_from_its_tuned_entry(algo):
    agent = npgrad.ALGOS[algo]("LunarLander-v3")
    values = TUNED[algo]["LunarLander-v3"][0]
    assert {name: getattr(agent.config, name) for name in values} == values, str(agent.config)
    assert agent.defaults_source.startswith("tuned for LunarLander-v3")
    agent.learn(agent.config.n_envs * agent.config.n_steps)  # one update (PPO 16 x 1024, TRPO 8 x 512) on the real env
    assert agent.num_updates == 1 and agent.progress.failed_updates == 0
