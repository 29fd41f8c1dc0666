"""The baseline of `bench.api`: the same request models, validated by FastAPI, and nothing else."""

from __future__ import annotations

from fastapi import FastAPI

from puhui.entrypoints.api import BalanceOut, Health, Submission

app = FastAPI()


@app.post("/v1/records")
def submit(body: Submission) -> dict[str, int]:
    """Validate a submission and answer without doing anything with it."""
    return {"records": len(body.records)}


@app.get("/v1/me", response_model=BalanceOut)
def balance() -> BalanceOut:
    """A constant balance."""
    return BalanceOut(balance_g=0)


@app.get("/healthz", response_model=Health)
def healthz() -> Health:
    """Liveness."""
    return Health(status="ok")
