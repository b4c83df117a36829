# Registry base, for machines that can pull from a container registry.
FROM python:3.11-slim
ENV LANG=C.UTF-8
