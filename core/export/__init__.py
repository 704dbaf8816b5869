"""Export: adapter, merged safetensors, GGUF writer and verification, Ollama Modelfile."""
