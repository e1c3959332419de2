// Imported `with { type: 'file' }`: the value is a path Bun.file() reads (embedded in a compiled binary).
declare module 'swagger-ui-dist/swagger-ui-bundle.js' {
  const path: string
  export default path
}
declare module 'swagger-ui-dist/swagger-ui.css' {
  const path: string
  export default path
}
