"""The agents a caller may submit jobs to."""
from __future__ import annotations

from apispec.ext.marshmallow import OpenAPIConverter
from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from .auth import protect
from .openapi import RATE_LIMIT_HEADERS, documents_errors, headers
from .schemas import AgentListSchema

blp = Blueprint("agents", __name__, url_prefix="/api/ai/agents", description="The enabled agents.")
protect(blp)

_converter = OpenAPIConverter(openapi_version="3.0.3", schema_name_resolver=lambda schema: None, spec=None)


def _input_json_schema(schema_class) -> dict:
    schema = _converter.schema2jsonschema(schema_class())
    schema["additionalProperties"] = False
    return schema


@blp.route("")
class Agents(MethodView):
    @blp.doc(operationId="listAgents")
    @blp.response(
        200, AgentListSchema,
        headers=headers("Cache-Control", *RATE_LIMIT_HEADERS, required=("Cache-Control",)),
        example={"agents": [{
            "name": "echo", "description": "Echoes its input back, step by step.", "time_limit_s": 60.0,
            "input_schema": {"type": "object", "properties": {"text": {"type": "string", "maxLength": 2000}},
                             "required": ["text"], "additionalProperties": False},
        }]},
    )
    @documents_errors(blp)
    def get(self):
        """List the enabled agents

        Each agent with its description, its time limit and the JSON Schema of its input: submit a job
        whose `input` matches it. The list changes only when the service is redeployed.
        """
        agents = current_app.extensions["job_service"].agents.values()
        return {
            "agents": [
                {
                    "name": agent.name,
                    "description": agent.description,
                    "time_limit_s": agent.time_limit_s,
                    "input_schema": _input_json_schema(agent.input_schema),
                }
                for agent in sorted(agents, key=lambda a: a.name)
            ]
        }
