"""``paw infer``: generation with a base model (+ adapter, or a merged model) on one text or a file of inputs."""
