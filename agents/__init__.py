"""Search agents behind one ask/tell interface (:class:`archgym.agent.Agent`).

One module per agent; ``archgym.agent.AGENTS`` maps the CLI names (random, walk,
grid, ga, aco, bo, tpe, cmaes, nsga2, gp, ppo) to their classes, imported lazily.
"""
