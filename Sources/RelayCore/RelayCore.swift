// RelayCore: channels, fan-out, backpressure, presence, history, sites.
