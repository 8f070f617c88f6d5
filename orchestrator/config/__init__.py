"""What the user wrote, validated once: the project (project, yamlfile), hosts (hosts,
slurm), experiments and env specs (experiments, envspec, on remote.spec's typed builder)."""
