FROM python:3.11-slim
WORKDIR /src
COPY . .
RUN pip install --no-cache-dir '.[aws,gcp,azure]' && rm -rf /src
USER 65532:65532
ENTRYPOINT ["quartermaster"]
CMD ["run"]
