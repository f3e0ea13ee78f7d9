"""DQN (Mnih et al. 2015): the module (the update), the batch stream, and the learner that
builds and fits them."""
