"""Box2D environments (the ``box2d`` extra; skipped without it): LunarLander starts from its family's defaults."""
import pytest

import npgrad
from npgrad.tuned import FAMILIES

pytest.importorskip("Box2D", reason="Box2D is an optional extra: pip install -e '.[box2d]'")


@pytest.mark.parametrize("env_id, family", [("LunarLander-v3", "discrete"),
                                            ("LunarLanderContinuous-v3", "continuous")])
@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_lunar_lander_starts_from_its_familys_defaults(algo, env_id, family):
    agent = npgrad.ALGOS[algo](env_id)
    values = FAMILIES[family][algo][0]
    assert {name: getattr(agent.config, name) for name in values} == values, f"{algo} {env_id}: {agent.config}"
    assert agent.defaults_source.startswith(f"{family}-control family, no tuned entry for {env_id}")
    agent.learn(2 * agent.config.n_envs * agent.config.n_steps)  # two updates on the real environment
    assert agent.num_updates == 2 and agent.progress.failed_updates == 0
