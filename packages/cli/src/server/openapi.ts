import { z } from 'zod'
import type { RouteSpec } from './route-spec.js'

export interface OpenApiInfo {
  title?: string
  version?: string
}

/** `/v1/keys/:id/rotate` → `/v1/keys/{id}/rotate` */
export function openApiPath(expressPath: string): string {
  return expressPath.replace(/:([A-Za-z0-9_]+)/g, '{$1}')
}

type JsonSchema = Record<string, unknown>

function schemaOf(schema: z.ZodType, components: Record<string, JsonSchema>): JsonSchema {
  const generated = z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' })
  // Named schemas (`.meta({ id })`) come out as `$defs`; OpenAPI keeps them under components.
  const json = JSON.parse(JSON.stringify(generated).replaceAll('"#/$defs/', '"#/components/schemas/')) as JsonSchema & {
    $defs?: Record<string, JsonSchema>
    $schema?: string
  }
  const { $defs, $schema: _dialect, ...rest } = json
  for (const [id, definition] of Object.entries($defs ?? {})) components[id] = definition
  return rest
}

/** Query or path parameters from a zod object schema. */
function parametersOf(schema: z.ZodType | undefined, location: 'query' | 'path', components: Record<string, JsonSchema>): JsonSchema[] {
  if (!schema) return []
  const json = schemaOf(schema, components) as { properties?: Record<string, JsonSchema>; required?: string[] }
  return Object.entries(json.properties ?? {}).map(([name, property]) => {
    const { description, ...rest } = property as JsonSchema & { description?: string }
    return {
      name,
      in: location,
      required: location === 'path' || (json.required ?? []).includes(name),
      ...(description === undefined ? {} : { description }),
      schema: rest,
    }
  })
}

/**
 * The OpenAPI 3.1 document of a list of routes, built from the same zod
 * schemas that validate requests (OpenAPI 3.1 schemas are JSON Schema 2020-12).
 */
export function buildOpenApiDocument(routes: readonly RouteSpec[], info: OpenApiInfo = {}): Record<string, unknown> {
  const components: Record<string, JsonSchema> = {}
  const paths: Record<string, Record<string, unknown>> = {}
  for (const route of routes) {
    const operation: Record<string, unknown> = {
      operationId: route.operationId,
      summary: route.summary,
      tags: [route.auth === 'admin' ? 'admin' : 'service'],
      security: route.auth === 'none' ? [] : [{ bearer: [] }, { apiKeyHeader: [] }],
    }
    const parameters = [...parametersOf(route.params, 'path', components), ...parametersOf(route.query, 'query', components)]
    if (parameters.length > 0) operation['parameters'] = parameters
    if (route.body) {
      operation['requestBody'] = {
        required: !route.bodyOptional,
        content: { 'application/json': { schema: schemaOf(route.body, components) } },
      }
    }
    operation['responses'] = Object.fromEntries(
      Object.entries(route.responses).map(([status, response]) => [
        status,
        {
          description: response.description,
          ...(response.schema
            ? { content: { 'application/json': { schema: schemaOf(response.schema, components) } } }
            : response.contentType
              ? { content: { [response.contentType]: { schema: { type: 'string' } } } }
              : {}),
        },
      ]),
    )
    const path = openApiPath(route.path)
    paths[path] = { ...paths[path], [route.method]: operation }
  }
  return {
    openapi: '3.1.0',
    info: {
      title: info.title ?? 'keyrot reference server',
      version: info.version ?? '0.1.0',
      description:
        'Admin API for keyrot API keys. Admin routes need a key with the `admin` scope, sent as `Authorization: Bearer <token>` or `X-API-Key: <token>`. Errors are `{ "error": { "code", "message", "field"? } }` with stable KEYROT_* codes.',
    },
    paths,
    components: {
      schemas: components,
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'A keyrot API key.' },
        apiKeyHeader: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
      },
    },
  }
}
